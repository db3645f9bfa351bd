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
        if (TryCallWithProgress(report => Client.CreateImageAsync(request, report, Cancel), activity, target, out var image)) WriteObject(image);
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

/// <summary>A stopped container, or one of its snapshots, becomes an image (LXD's publish), launchable with New-SystemContainer -Image ALIAS.</summary>
[Cmdlet(VerbsData.Publish, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerImage))]
public sealed class PublishSystemContainerCommand : ImageCreatingCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>Publish this snapshot of the container instead of the container itself.</summary>
    [Parameter]
    public string? Snapshot { get; set; }

    [Parameter(Mandatory = true)]
    public string Alias { get; set; } = "";

    [Parameter]
    public string? Description { get; set; }

    protected override void ProcessRecord()
    {
        string what = Snapshot is null ? Name : $"{Name}/{Snapshot}";
        if (!ShouldProcess(what, $"Publish system container as image '{Alias}'")) return;
        Create(new ImageCreateRequest("container", Alias: Alias, Description: Description, Container: what), $"Publishing {what}", what);
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


[Cmdlet(VerbsCommon.Copy, "SystemContainerImage", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerImage))]
public sealed class CopySystemContainerImageCommand : SystemContainerCmdlet
{
    /// <summary>The image on the source (-Remote): an alias or fingerprint (images piped in bind by fingerprint).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Fingerprint")]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string Image { get; set; } = "";

    /// <summary>The remote that gets the image ("local" for this host's daemon).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string Destination { get; set; } = "";

    /// <summary>Aliases the image gets on the destination.</summary>
    [Parameter]
    public string[] Alias { get; set; } = [];

    /// <summary>Gives the image on the destination the aliases it has on the source as well.</summary>
    [Parameter]
    public SwitchParameter CopyAliases { get; set; }

    protected override void ProcessRecord()
    {
        var source = Client;
        var target = ClientFor(Destination);
        if (!TryCall(c => c.GetImageAsync(Image, Cancel), Image, out var image)) return;
        var aliases = Alias.Concat(CopyAliases ? image.Aliases : []).Distinct(StringComparer.Ordinal).ToList();
        if (!ShouldProcess(image.Name, $"Copy image {image.Fingerprint[..12]} to {Destination}")) return;
        if (!TryCall(_ => target.ListImagesAsync(Cancel), Destination, out var there)) return;
        // An alias the destination gives another image would fail after the transfer: refused before it.
        foreach (var alias in aliases)
        {
            if (there.FirstOrDefault(i => i.Aliases.Contains(alias)) is { } owner && owner.Fingerprint != image.Fingerprint)
            {
                WriteError(ToErrorRecord(new SystemContainersApiException(409, "AliasInUse",
                    $"image alias '{alias}' already names image {owner.Fingerprint[..12]} on {Destination}"), alias));
                return;
            }
        }
        var copied = there.FirstOrDefault(i => i.Fingerprint == image.Fingerprint);
        if (copied is not null) WriteVerbose($"{Destination} has image {image.Fingerprint[..12]} already: not copied");
        else if (!Pull(source, target, image, out copied)) return;
        foreach (var alias in aliases)
            if (!TryCall(_ => target.AddImageAliasAsync(image.Fingerprint, alias, Cancel), alias, out copied)) return;
        WriteObject(copied);
    }

    /// <summary>Has the destination fetch the image from the source with a secret the source issued; nothing passes through here.</summary>
    private bool Pull(SystemContainersClient source, SystemContainersClient target, SystemContainerImage image, out SystemContainerImage copied)
    {
        copied = default!;
        if (!TryCall(_ => SourceAddressAsync(source, "the image"), Image, out var from)) return false;
        if (!TryCall(c => c.CreateImageSecretAsync(image.Fingerprint, null, Cancel), Image, out var secret)) return false;
        var request = new ImageCreateRequest("pull", Description: image.Description, Server: from.Server, Secret: secret.Secret,
            Certificate: from.Certificate, Fingerprint: image.Fingerprint);
        bool pulled = false;
        try
        {
            pulled = TryCallWithProgress(report => target.CreateImageAsync(request, report, Cancel), $"Copying image {image.Name} to {Destination}", Image, out copied);
            return pulled;
        }
        finally
        {
            if (!pulled) WithdrawSecret(source, secret.OperationId);
        }
    }
}
