using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Reads one container from disk at daemon start; a running one whose pid and start time still
/// match is adopted again. A container whose files cannot be read is listed with status Error and
/// the reason, its files left as they are, and never stops the others from loading.
/// </summary>
internal sealed class AdoptContainer(EngineParts parts, ContainerCleanup cleanup, ContainerSupervisor supervisor)
{
    public void Load(string name)
    {
        ContainerRecord record;
        try
        {
            record = parts.Store.ReadConfig(name);
        }
        catch (EngineException e) when (e.Reason == "DamagedState")
        {
            var placeholder = new ContainerRecord(name, "", null, new Dictionary<string, string>(), Directory.GetCreationTimeUtc(parts.Store.DirectoryOf(name)),
                null, "", Guid.NewGuid());
            MarkDamaged(new Container(placeholder, RuntimeRecord.NeverStarted), e.Message);
            return;
        }
        if (record.Id == Guid.Empty) record = record with { Id = Guid.NewGuid() };
        var c = new Container(record, RuntimeRecord.NeverStarted);
        try
        {
            var config = c.Spec;
            parts.Networks.Restore(name, config.Nics);
            c.Runtime = parts.Store.ReadRuntime(name);
            parts.Registry.Set(c);
            Reconcile(c);
        }
        catch (Exception e) when (e is EngineException or NativeException or IOException)
        {
            MarkDamaged(c, e.Message);
        }
    }

    private void MarkDamaged(Container c, string reason)
    {
        c.Damage = reason;
        parts.Registry.Set(c);
        EngineLog.Write($"container '{c.Name}' is damaged and kept as it is: {reason}");
    }

    /// <summary>A container the engine froze for a moment (FreezeContainer.Briefly) when the daemon died is thawed; true when it was.</summary>
    private bool ThawBriefFreeze(Container c, LiveInit live)
    {
        string marker = Path.Combine(parts.Store.DirectoryOf(c.Name), FreezeContainer.BriefMarker);
        if (!File.Exists(marker)) return false;
        bool frozen = live.Frozen;
        if (frozen)
        {
            parts.Cgroups.SetFrozen(live.Cgroup, false);
            live.Frozen = false;
            EngineLog.Write($"container '{c.Name}' was frozen for a snapshot, copy or export when the daemon died: thawed");
        }
        File.Delete(marker);
        return frozen;
    }

    /// <summary>A loaded container's init adopted when it still runs; otherwise it is recorded as stopped.</summary>
    private void Reconcile(Container c)
    {
        string name = c.Name;
        var runtime = c.Runtime;
        // A zombie init has exited: its parent has just not reaped it yet.
        if (runtime.Running && runtime.Pid is int pid && runtime.PidStartTime is ulong start && ProcStat.StartTime(pid) == start && ProcStat.IsRunning(pid))
        {
            var pidfd = Sys.PidfdOpen(pid);
            try
            {
                var cgroup = parts.Cgroups.Open(name);
                var live = new LiveInit(pid, pidfd, cgroup, ReattachConsole(c, pidfd))
                {
                    Frozen = parts.Cgroups.ReadStats(cgroup).Frozen,
                    CpuSet = c.Spec.Limits.CpuSet,
                    HostInterfaces = parts.Networks.HostInterfacesOf(name, c.Spec.Nics, pid),
                    LastSample = new(runtime.StartedAt ?? DateTimeOffset.UtcNow, 0),
                };
                c.Live = live;
                string recovery = ThawBriefFreeze(c, live) ? $"init {pid} adopted at daemon start and thawed: the daemon died while it was frozen for a snapshot, copy or export" : $"init {pid} adopted at daemon start";
                c.Runtime = runtime with { Recovery = recovery };
                cleanup.TryWriteRuntime(c);
                supervisor.Watch(c, live);
                return;
            }
            catch (Exception e) when (e is NativeException or EngineException or IOException && !ProcStat.IsRunning(pid))
            {
                // It exited while being adopted: it is a stopped container, not a damaged one.
                c.Live = null;
                pidfd.Dispose();
            }
        }
        File.Delete(Path.Combine(parts.Store.DirectoryOf(name), FreezeContainer.BriefMarker));
        int killed = cleanup.KillLeftovers(name) ?? 0;
        cleanup.TryRemoveCgroup(name);
        if (!runtime.Running && !runtime.Starting && killed == 0) return;
        string what = runtime.Starting ? "a start was cut short by the daemon's death"
            : runtime.Running ? $"init {runtime.Pid} had exited while no daemon watched it" : "it was stopped";
        c.Runtime = runtime with
        {
            Running = false, Starting = false, Pid = null, PidStartTime = null,
            StoppedAt = runtime.Running || runtime.Starting ? DateTimeOffset.UtcNow : runtime.StoppedAt,
            Recovery = $"{what}; {killed} process(es) left in its cgroup were killed at daemon start",
        };
        cleanup.TryWriteRuntime(c);
    }

    /// <summary>
    /// The previous daemon took the console's master with it, which hangs the old pty up for
    /// good (a getty on it would restart in a loop). A new pty goes over /dev/console instead.
    /// </summary>
    private ConsoleLog? ReattachConsole(Container c, SafeFd pidfd)
    {
        try
        {
            if (c.Spec.IsStateful) return ReattachOwnConsole(c, pidfd);
            var (master, slave, slavePath) = Sys.OpenPty(c.RootUid, c.RootGid + 5);
            try
            {
                parts.ScInit.AttachConsole(new LaunchPlan().Add("console", slavePath), pidfd);
                return new ConsoleLog(master, slave, parts.ConsoleLogOf(c.Name), parts.Loop);
            }
            catch
            {
                master.Dispose();
                slave.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is ScInitException or NativeException)
        {
            EngineLog.Write($"container '{c.Name}' keeps running without a console: {e.Message}");
            return null;
        }
    }

    /// <summary>A checkpointable container's console stays in its own devpts, so criu can still dump it.</summary>
    private ConsoleLog ReattachOwnConsole(Container c, SafeFd pidfd)
    {
        var master = parts.ScInit.AttachOwnConsole(new LaunchPlan().Add("userns", c.Record.IdMap is null ? 0 : 1).Add("uid", 0).Add("gid", 0), pidfd);
        try
        {
            return new ConsoleLog(master, Sys.OpenPtyPeer(master), parts.ConsoleLogOf(c.Name), parts.Loop);
        }
        catch
        {
            master.Dispose();
            throw;
        }
    }
}
