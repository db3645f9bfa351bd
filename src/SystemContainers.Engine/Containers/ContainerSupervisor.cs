using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;

namespace SystemContainers.Engine.Containers;

/// <summary>Watches running inits through their pidfds; when one exits, stopped or crashed, its run is released and recorded.</summary>
internal sealed class ContainerSupervisor(EngineParts parts, ContainerCleanup cleanup)
{
    public void Watch(Container c, LiveInit live) => parts.Loop.WatchExit(live.Pidfd, status => OnExit(c, live, status));

    private void OnExit(Container c, LiveInit live, ExitStatus? status)
    {
        try
        {
            // An adopted init is reaped by its real parent; the kernel still tells how it ended.
            status ??= ExitInfo.Of(live.Pidfd, live.Pid, c.Runtime.PidStartTime);
            long oomKills = OomKillsOf(live);
            live.Dispose();
            lock (live.HostInterfaces) cleanup.DetachAll(live.HostInterfaces);
            cleanup.TryRemoveCgroup(c.Name);
            c.Runtime = c.Runtime with
            {
                Running = false, Pid = null, PidStartTime = null, StoppedAt = DateTimeOffset.UtcNow,
                LastExitCode = status?.Code, LastExitSignal = status?.Signal, OomKills = oomKills,
            };
            c.Live = null;
            parts.Store.WriteRuntime(c.Name, c.Runtime);
        }
        catch (Exception e)
        {
            EngineLog.Write($"cleanup of container '{c.Name}' failed: {e.Message}");
        }
        finally
        {
            c.Live = null;
            // The exit is told before whoever waits on it goes on: a stop's container-stopped comes after it.
            try { parts.Raise("container-exited", c.Name); }
            finally { live.Exited.TrySetResult(); }
        }
    }

    /// <summary>The run's OOM kills, read before its cgroup goes (an OOM kill of init ends the run that counted it).</summary>
    private long OomKillsOf(LiveInit live)
    {
        try { return parts.Cgroups.ReadStats(live.Cgroup).OomKills; }
        catch (Exception e) when (e is IOException or FormatException or EngineException) { return 0; }
    }
}
