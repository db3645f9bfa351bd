namespace SystemContainers.Engine.Containers;

/// <summary>
/// The source's half of a live move (Move-SystemContainer -Live): criu dumps the running
/// container with its network locked and, while it still holds the tree frozen, the container's
/// stream (its volume, then criu's images) is handed over; the hand-over returns once the target
/// runs the container, or throws. Returned, criu ends the tree and the container is removed here;
/// thrown, criu thaws the tree, which runs on with its NICs and connections, and nothing here changed.
/// </summary>
internal sealed class SendRunningContainer(CheckpointContainer checkpoint, ExportContainer export, DeleteContainer delete)
{
    /// <summary>Under the container's gate: handOver writes the export and waits for the target's word.</summary>
    public async Task RunAsync(Container c, ExportOptions options, Func<ContainerExport, Task> handOver)
    {
        await checkpoint.StopAsync(c, images =>
        {
            StepTrace.Mark("live move: dumped, sending");
            using var stream = export.OpenFrozen(c, options, images);
            // criu's notify callback is synchronous: the tree stays frozen until this returns.
            handOver(stream).GetAwaiter().GetResult();
            StepTrace.Mark("live move: target runs it");
        });
        await delete.RunAsync(c, force: false);
    }
}
