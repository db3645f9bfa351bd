using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// Copies files between this machine and a container, running or stopped, as Copy-VMFile does
/// for a VM: the daemon resolves every container path inside the container's root; the local
/// side is LocalArchive. Wildcards in -Path are expanded on the side it is read from.
/// </summary>
[Cmdlet(VerbsCommon.Copy, "SystemContainerFile", DefaultParameterSetName = ToSet)]
[OutputType(typeof(void))]
public sealed class CopySystemContainerFileCommand : SystemContainerCmdlet
{
    private const string ToSet = "ToContainer", FromSet = "FromContainer";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    [Alias("SourcePath")]
    [SupportsWildcards]
    public string[] Path { get; set; } = [];

    [Parameter(Mandatory = true, Position = 2)]
    [Alias("DestinationPath")]
    public string Destination { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ToSet)]
    public SwitchParameter ToContainer { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = FromSet)]
    public SwitchParameter FromContainer { get; set; }

    [Parameter]
    public SwitchParameter Recurse { get; set; }

    /// <summary>Replaces existing files and creates a missing destination directory.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == ToSet) Push();
        else foreach (var path in Path) Pull(path);
    }

    private void Push()
    {
        var local = new List<string>();
        foreach (var p in Path)
        {
            try { local.AddRange(GetResolvedProviderPathFromPSPath(p, out _)); }
            catch (ItemNotFoundException e)
            {
                WriteError(new ErrorRecord(e, "PathNotFound", ErrorCategory.ObjectNotFound, p));
                return;
            }
        }
        if (!Local(() => LocalArchive.CheckSources(local, Recurse))) return;
        if (TryCall(c => c.PushFilesAsync(Name, Destination, Force, s => LocalArchive.WriteAsync(local, s, Cancel), Cancel), Name, out var done))
        {
            foreach (var s in done.Skipped) WriteWarning(s);
            WriteVerbose($"{done.Files} files ({done.Bytes} bytes), {done.Directories} directories and {done.Links} links copied to {Name}:{Destination}");
        }
    }

    private void Pull(string path)
    {
        string destination = GetUnresolvedProviderPathFromPSPath(Destination);
        List<string> skipped = [];
        bool ok = false;
        Local(() => ok = TryCall(c => c.PullFilesAsync(Name, path, Recurse, async s => skipped = await LocalArchive.ExtractAsync(s, destination, Force, Cancel), Cancel), Name));
        if (!ok) return;
        foreach (var s in skipped) WriteWarning(s);
    }

    /// <summary>Runs a step on local files; a local failure is a non-terminating error about its path.</summary>
    private bool Local(Action step)
    {
        try
        {
            step();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(new ErrorRecord(e, e is FileNotFoundException or DirectoryNotFoundException ? "PathNotFound" : "FileCopyFailed",
                e is FileNotFoundException or DirectoryNotFoundException ? ErrorCategory.ObjectNotFound : ErrorCategory.WriteError, Name));
            return false;
        }
    }
}
