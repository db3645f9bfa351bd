using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Images;

namespace SystemContainers.Engine.Containers;

/// <summary>Stops a running init: its init kind's stop signal and a wait, then SIGKILL; done when the supervisor has seen it exit.</summary>
internal sealed class StopContainer(FreezeContainer freezer)
{
    public async Task RunAsync(Container c, bool force, TimeSpan? timeout)
    {
        var (state, live) = c.Snapshot();
        if (live is null || !state.CanStop()) throw c.NotRunning();
        c.Stopping = true;
        try
        {
            // A frozen init could neither shut down nor die.
            if (live.Frozen) freezer.Thaw(live);
            if (!force && (timeout ?? c.Spec.StopTimeoutValue) is var wait && wait > TimeSpan.Zero)
            {
                Sys.PidfdSignal(live.Pidfd, InitKinds.StopSignal(c.Record.InitKind));
                if (await Task.WhenAny(live.Exited.Task, Task.Delay(wait)) == live.Exited.Task) return;
            }
            Sys.PidfdSignal(live.Pidfd, 9);
            if (await Task.WhenAny(live.Exited.Task, Task.Delay(TimeSpan.FromSeconds(30))) != live.Exited.Task)
                throw new EngineException(FailureKind.Failed, "StopFailed", $"container '{c.Name}' did not exit after SIGKILL");
        }
        finally
        {
            c.Stopping = false;
        }
    }
}
