using SystemContainers.Engine.Network;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// The source's half of a live move (Move-SystemContainer -Live). While the container runs, the
/// first part of its stream (its volume as a snapshot takes it, btrfs only) goes to presync; then
/// criu dumps it with its network locked and, while it still holds the tree frozen, the rest (the
/// volume's changes since, then criu's images) is handed over; the hand-over returns once the
/// target runs the container, or throws. Returned, criu ends the tree and the container is removed
/// here; thrown (or presync thrown), criu thaws the tree, which runs on with its NICs and
/// connections, and nothing here changed.
/// </summary>
internal sealed class SendRunningContainer(CheckpointContainer checkpoint, ExportContainer export, DeleteContainer delete)
{
    /// <summary>Under the container's gate: presync writes the first part, handOver the rest, and waits for the target's word.</summary>
    public async Task RunAsync(Container c, ExportOptions options, Func<ContainerExport, Task> presync, Func<ContainerExport, Task> handOver)
    {
        // Refused before anything is sent, so the target is told why rather than seeing a stream cut.
        CheckpointContainer.CheckStoppable(c);
        using (var stream = export.OpenLive(c, options))
        {
            await presync(stream);
            StepTrace.Mark("live move: pre-synced, dumping");
            try
            {
                await checkpoint.StopAsync(c, images =>
                {
                    StepTrace.Mark("live move: dumped, sending");
                    stream.ImagesDir = images;
                    // criu's notify callback is synchronous: the tree stays frozen until this returns.
                    handOver(stream).GetAwaiter().GetResult();
                    StepTrace.Mark("live move: target runs it");
                });
            }
            catch
            {
                // A target that ran the container and then failed announced its MACs from there.
                Announce(c);
                throw;
            }
        }
        await delete.RunAsync(c, force: false);
    }

    private static void Announce(Container c)
    {
        if (c.Snapshot().Live is not { } live) return;
        try
        {
            MacAnnouncement.Send(live.Pid, [.. c.Spec.BridgedNics.Where(n => n.HwAddr is not null).Select(n => (Name: n.Name, Mac: n.HwAddr!))]);
        }
        catch (Interop.NativeException e)
        {
            EngineLog.Write($"container '{c.Name}' runs on here after its live move failed, but its NICs' MACs could not be announced: {e.Message}");
        }
    }
}
