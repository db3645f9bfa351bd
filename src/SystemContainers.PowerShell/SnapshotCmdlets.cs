using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>Checkpoint and Get: the containers, by name or pipeline, wildcards allowed.</summary>
public abstract class ContainersSnapshotCmdlet : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("ContainerName")]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];
}

[Cmdlet(VerbsData.Checkpoint, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerSnapshot))]
public sealed class CheckpointSystemContainerCommand : ContainersSnapshotCmdlet
{
    /// <summary>The snapshot's name (default: by the container's snapshots.pattern, snap0, snap1, ...).</summary>
    [Parameter(Position = 1)]
    public string? SnapshotName { get; set; }

    /// <summary>When the daemon deletes the snapshot (LXD's expires_at); local time unless it says otherwise. Default: kept until removed.</summary>
    [Parameter]
    public DateTimeOffset? ExpiresAt { get; set; }

    /// <summary>Keep the running processes too (criu; the container needs migration.stateful=true and runs on).</summary>
    [Parameter]
    public SwitchParameter Stateful { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandContainerNames(Name))
        {
            if (!ShouldProcess(name, $"Snapshot system container{(Stateful ? " with its processes" : "")}{(SnapshotName is null ? "" : $" as {SnapshotName}")}")) continue;
            if (TryCall(c => c.CreateSnapshotAsync(name, new SnapshotCreateRequest(SnapshotName, ExpiresAt, Stateful), Cancel), name, out var made) && PassThru)
                WriteObject(made);
        }
    }
}

[Cmdlet(VerbsCommon.Get, "SystemContainerSnapshot")]
[OutputType(typeof(SystemContainerSnapshot))]
public sealed class GetSystemContainerSnapshotCommand : ContainersSnapshotCmdlet
{
    /// <summary>The snapshots to return, wildcards allowed (default: all).</summary>
    [Parameter(Position = 1)]
    [SupportsWildcards]
    public string[]? SnapshotName { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandContainerNames(Name))
            if (TryCall(c => c.ListSnapshotsAsync(name, Cancel), name, out var all))
                WriteMatches(all, SnapshotName, (s, pattern, _) => pattern.IsMatch(s.SnapshotName), "SnapshotNotFound", $"snapshot of '{name}'");
    }
}

[Cmdlet(VerbsData.Restore, "SystemContainerSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(SystemContainer))]
public sealed class RestoreSystemContainerSnapshotCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("ContainerName")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    public string SnapshotName { get; set; } = "";

    /// <summary>Restore without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Restore the snapshot's processes too (a snapshot taken with -Stateful): the container runs again from that moment.</summary>
    [Parameter]
    public SwitchParameter Stateful { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldRemove(Name, $"Restore system container to snapshot {SnapshotName}{(Stateful ? " and run its processes" : "")}, discarding what changed since", Force)) return;
        if (TryCall(c => c.RestoreSnapshotAsync(Name, SnapshotName, Cancel, Stateful), Name, out var restored) && PassThru)
            WriteObject(restored);
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerSnapshot", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerSnapshotCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("ContainerName")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[] SnapshotName { get; set; } = [];

    /// <summary>Remove without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var snapshot in ExpandNames(SnapshotName, c => c.ListSnapshotsAsync(Name, Cancel), s => [s.SnapshotName]))
            if (ShouldRemove($"{Name}/{snapshot}", "Remove system container snapshot", Force))
                TryCall(c => c.DeleteSnapshotAsync(Name, snapshot, Cancel), Name);
    }
}

/// <summary>Gives a snapshot a new name (LXD's snapshot rename); running containers keep running.</summary>
[Cmdlet(VerbsCommon.Rename, "SystemContainerSnapshot", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerSnapshot))]
public sealed class RenameSystemContainerSnapshotCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("ContainerName")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    public string SnapshotName { get; set; } = "";

    [Parameter(Mandatory = true, Position = 2)]
    public string NewName { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess($"{Name}/{SnapshotName}", $"Rename system container snapshot to {NewName}")) return;
        if (TryCall(c => c.RenameSnapshotAsync(Name, SnapshotName, NewName, Cancel), Name, out var renamed) && PassThru)
            WriteObject(renamed);
    }
}
