using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

public sealed class StoragePoolNameCompleter : DaemonNameCompleter
{
    protected override IEnumerable<(string, string)> Names(SystemContainersClient client) =>
        client.ListStoragePoolsAsync().GetAwaiter().GetResult().Select(p => (p.Name, $"{p.Name} ({p.Driver})"));
}

[Cmdlet(VerbsCommon.Get, "SystemContainerStoragePool")]
[OutputType(typeof(SystemContainerStoragePool))]
public sealed class GetSystemContainerStoragePoolCommand : SystemContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(StoragePoolNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        if (TryCall(c => c.ListStoragePoolsAsync(Cancel), null, out var all))
            WriteMatches(all, Name, (p, pattern, _) => pattern.IsMatch(p.Name), "PoolNotFound", "storage pool");
    }
}

[Cmdlet(VerbsCommon.New, "SystemContainerStoragePool", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerStoragePool))]
public sealed class NewSystemContainerStoragePoolCommand : SystemContainerCmdlet
{
    /// <summary>The pool's name: lowercase letters, digits and '-'.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    public string Name { get; set; } = "";

    /// <summary>dir (a copy of the image per container) or btrfs (a snapshot of the image per container).</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateSet("dir", "btrfs")]
    public string Driver { get; set; } = "";

    /// <summary>An existing directory (on btrfs for the btrfs driver); for btrfs, a file path that does not exist yet becomes a loop file. Empty: a directory, or a loop file, in the daemon's state directory.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public string? Source { get; set; }

    /// <summary>The size of the loop file a btrfs pool makes, like 5GiB (default: 20% of the free space, at most 30 GiB).</summary>
    [Parameter]
    public string? Size { get; set; }

    [Parameter]
    public string? Description { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, $"Create {Driver} storage pool")) return;
        var config = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Size is not null) config["size"] = Size;
        if (Description is not null) config["description"] = Description;
        if (TryCall(c => c.CreateStoragePoolAsync(new StoragePoolCreateRequest(Name, Driver, Source, config), Cancel), Name, out var created))
            WriteObject(created);
    }
}

[Cmdlet(VerbsCommon.Set, "SystemContainerStoragePool", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerStoragePool))]
public sealed class SetSystemContainerStoragePoolCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(StoragePoolNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>The pool's description; an empty one removes it.</summary>
    [Parameter(Mandatory = true)]
    [AllowEmptyString]
    public string Description { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandNames(Name, c => c.ListStoragePoolsAsync(Cancel), p => [p.Name]))
        {
            if (!ShouldProcess(name, $"Set description={Description}")) continue;
            var changes = new Dictionary<string, string?>(StringComparer.Ordinal) { ["description"] = Description };
            if (TryCall(c => c.UpdateStoragePoolAsync(name, new StoragePoolUpdateRequest(changes), Cancel), name, out var updated) && PassThru)
                WriteObject(updated);
        }
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerStoragePool", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerStoragePoolCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(StoragePoolNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Remove without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandNames(Name, c => c.ListStoragePoolsAsync(Cancel), p => [p.Name]))
            if (ShouldRemove(name, "Remove system container storage pool", Force))
                TryCall(c => c.DeleteStoragePoolAsync(name, Cancel), name);
    }
}
