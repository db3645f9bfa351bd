using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

public sealed class ImageNameCompleter : DaemonNameCompleter
{
    protected override IEnumerable<(string, string)> Names(SystemContainersClient client) =>
        client.ListImagesAsync().GetAwaiter().GetResult().Select(i => (i.Name, $"{i.Name} ({i.Description})"));
}

[Cmdlet(VerbsCommon.Get, "SystemContainerImage")]
[OutputType(typeof(SystemContainerImage))]
public sealed class GetSystemContainerImageCommand : SystemContainerCmdlet
{
    /// <summary>Alias or fingerprint (prefix), wildcards allowed.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        if (TryCall(c => c.ListImagesAsync(Cancel), null, out var all))
            WriteMatches(all, Name, (i, pattern, name) => i.Aliases.Any(pattern.IsMatch) || pattern.IsMatch(i.Fingerprint) ||
                (!WildcardPattern.ContainsWildcardCharacters(name) && name.Length >= 12 && i.Fingerprint.StartsWith(name, StringComparison.Ordinal)),
                "ImageNotFound", "image");
    }
}

/// <summary>Runs an image operation with Write-Progress fed by the daemon's progress reports.</summary>
public abstract class ImageCreatingCmdlet : SystemContainerCmdlet
{
    /// <summary>Builds or imports in a background job (Get-Job, Receive-Job); the job is written at once.</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    protected void Create(ImageCreateRequest request, string activity, string target)
    {
        if (AsJob)
        {
            var client = Client;
            var job = new SystemContainerJob(MyInvocation.Line, $"{MyInvocation.MyCommand.Name} {target}", client.Target);
            JobRepository.Add(job);
            job.Start<SystemContainerImage>([Here(target)], async (_, ct) =>
            {
                var image = await client.CreateImageAsync(request, null, ct);
                return (image, $"{target}: image {image.Fingerprint[..12]}, {image.Size / 1048576.0:N1} MiB");
            });
            WriteObject(job);
            return;
        }
        var record = new ProgressRecord(1, activity, "starting");
        // Progress arrives on pool threads; only the pipeline thread may write it.
        using var updates = new System.Collections.Concurrent.BlockingCollection<string>();
        Task<SystemContainerImage> work;
        try
        {
            work = Client.CreateImageAsync(request, status => updates.Add(status.Length == 0 ? "working" : status), Cancel);
        }
        catch (SystemContainersApiException e)
        {
            WriteError(ToErrorRecord(e, target));
            return;
        }
        work.ContinueWith(_ => updates.CompleteAdding(), TaskScheduler.Default);
        foreach (var status in updates.GetConsumingEnumerable())
        {
            record.StatusDescription = status;
            WriteProgress(record);
        }
        record.RecordType = ProgressRecordType.Completed;
        WriteProgress(record);
        if (TryCall(_ => work, target, out var image)) WriteObject(image);
    }
}

[Cmdlet(VerbsData.Import, "SystemContainerImage", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerImage))]
public sealed class ImportSystemContainerImageCommand : ImageCreatingCmdlet
{
    /// <summary>A rootfs tarball: .tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true)]
    public string Alias { get; set; } = "";

    [Parameter]
    public string? Description { get; set; }

    protected override void ProcessRecord()
    {
        string path = GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(path, $"Import system container image as '{Alias}'")) return;
        Create(new ImageCreateRequest("file", path, Alias, Description), $"Importing {path}", path);
    }
}

[Cmdlet(VerbsCommon.New, "SystemContainerImage", SupportsShouldProcess = true, DefaultParameterSetName = "Busybox")]
[OutputType(typeof(SystemContainerImage))]
public sealed class NewSystemContainerImageCommand : ImageCreatingCmdlet
{
    [Parameter(Mandatory = true, ParameterSetName = "Busybox")]
    public SwitchParameter Busybox { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = "Debootstrap")]
    public SwitchParameter Debootstrap { get; set; }

    /// <summary>The distribution code name, e.g. bookworm.</summary>
    [Parameter(Mandatory = true, ParameterSetName = "Debootstrap")]
    public string Release { get; set; } = "";

    /// <summary>The archive to install from; by default the Debian mirror apt uses on this host.</summary>
    [Parameter(ParameterSetName = "Debootstrap")]
    public string? Mirror { get; set; }

    [Parameter(Mandatory = true)]
    public string Alias { get; set; } = "";

    [Parameter]
    public string? Description { get; set; }

    protected override void ProcessRecord()
    {
        string what = Debootstrap ? $"debootstrap {Release}" : "busybox";
        if (!ShouldProcess(Alias, $"Build system container image from {what}")) return;
        var request = Debootstrap
            ? new ImageCreateRequest("debootstrap", Alias: Alias, Description: Description, Release: Release, Mirror: Mirror)
            : new ImageCreateRequest("busybox", Alias: Alias, Description: Description);
        Create(request, $"Building image '{Alias}' ({what})", Alias);
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerImage", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = "Name")]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerImageCommand : SystemContainerCmdlet
{
    /// <summary>Alias or fingerprint, wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = "Name")]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Images from Get-SystemContainerImage: removed by fingerprint, whatever their aliases.</summary>
    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = "InputObject")]
    public SystemContainerImage[] InputObject { get; set; } = [];

    /// <summary>Remove without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        var targets = ParameterSetName == "InputObject" ? InputObject.Select(i => (Ref: i.Fingerprint, Shown: i.Name)) : Name.SelectMany(Targets);
        foreach (var (reference, shown) in targets)
            if (ShouldRemove(shown, "Remove system container image", Force))
                TryCall(c => c.DeleteImageAsync(reference, Cancel), shown);
    }

    /// <summary>
    /// A literal name goes to the daemon as it is. A pattern removes each image it names wholly (its
    /// fingerprint, or every alias it has); an image it names by only some aliases stays, as one
    /// alias of several never removes an image.
    /// </summary>
    private IEnumerable<(string Ref, string Shown)> Targets(string name)
    {
        if (!WildcardPattern.ContainsWildcardCharacters(name)) return [(name, name)];
        if (!TryCall(c => c.ListImagesAsync(Cancel), name, out var all)) return [];
        var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
        var targets = new List<(string, string)>();
        foreach (var image in all.Where(i => pattern.IsMatch(i.Fingerprint) || i.Aliases.Any(pattern.IsMatch)))
        {
            var others = image.Aliases.Where(a => !pattern.IsMatch(a)).ToList();
            if (pattern.IsMatch(image.Fingerprint) || others.Count == 0) targets.Add((image.Fingerprint, image.Name));
            else
                WriteError(new ErrorRecord(new InvalidOperationException(
                        $"image '{image.Name}' also has the aliases {string.Join(", ", others.Select(a => $"'{a}'"))}, which '{name}' does not match; it stays"),
                    "ImageHasOtherAliases", ErrorCategory.InvalidOperation, image.Name));
        }
        return targets;
    }
}

[Cmdlet(VerbsCommon.Add, "SystemContainerImageAlias", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerImage))]
public sealed class AddSystemContainerImageAliasCommand : SystemContainerCmdlet
{
    /// <summary>The image: an alias or fingerprint (images piped in bind by fingerprint).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Fingerprint")]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string Image { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    public string[] Alias { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        SystemContainerImage? last = null;
        foreach (var alias in Alias)
            if (ShouldProcess(Image, $"Add alias '{alias}'") && TryCall(c => c.AddImageAliasAsync(Image, alias, Cancel), alias, out var image))
                last = image;
        if (PassThru && last is not null) WriteObject(last);
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerImageAlias", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerImage))]
public sealed class RemoveSystemContainerImageAliasCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string[] Alias { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var alias in ExpandNames(Alias, c => c.ListImagesAsync(Cancel), i => i.Aliases))
            if (ShouldProcess(alias, "Remove image alias (the image stays)") && TryCall(c => c.RemoveImageAliasAsync(alias, Cancel), alias, out var image) && PassThru)
                WriteObject(image);
    }
}

