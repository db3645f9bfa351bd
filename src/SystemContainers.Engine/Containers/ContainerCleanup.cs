using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;

namespace SystemContainers.Engine.Containers;

/// <summary>Releasing what a container's run held: its init, its cgroup's processes, the cgroup, its host interfaces.</summary>
internal sealed class ContainerCleanup(EngineParts parts)
{
    /// <summary>An init of this daemon's whose start failed: killed, and reaped (the daemon is its subreaper).</summary>
    public static void KillAndReap(SafeFd pidfd)
    {
        Sys.PidfdSignal(pidfd, 9);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Sys.ReapPidfd(pidfd) is null && DateTime.UtcNow < deadline) Thread.Sleep(2);
        pidfd.Dispose();
    }

    /// <summary>Kills whatever runs in the container's cgroups though the daemon tracks no init there; returns how many.</summary>
    public int? KillLeftovers(string name)
    {
        try
        {
            return CgroupKiller.KillAll(parts.Cgroups.Open(name));
        }
        catch (EngineException e)
        {
            EngineLog.Write(e.Message);
            return null;
        }
    }

    public void TryRemoveCgroup(string name)
    {
        try { parts.Cgroups.Remove(name); }
        catch (EngineException e) { EngineLog.Write(e.Message); }
    }

    public void DetachAll(List<HostInterface> hostInterfaces)
    {
        foreach (var host in hostInterfaces) parts.Networks.Detach(host);
        hostInterfaces.Clear();
    }

    /// <summary>A record that says what happened; a failed write leaves the older record, which the next daemon start reconciles.</summary>
    public void TryWriteRuntime(Container c)
    {
        try { parts.Store.WriteRuntime(c.Name, c.Runtime); }
        catch (Exception e) when (e is NativeException or IOException) { EngineLog.Write($"container '{c.Name}': {e.Message}"); }
    }
}
