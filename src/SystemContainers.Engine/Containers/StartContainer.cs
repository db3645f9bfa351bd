using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Host;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Migration;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Builds the launch plan and runs sc-init; on any failure nothing of the attempt is left.
/// The intent (Starting) is on disk before the cgroup or the init exist, so a daemon that
/// dies at any point of the start finds it when it starts again and kills what was left.
/// </summary>
internal sealed class StartContainer(EngineParts parts, ContainerCleanup cleanup, ContainerSupervisor supervisor, ContainerCheckpoint checkpoint)
{
    /// <summary>Starts the container, from its saved state if it has one (a stateful stop's) unless stateless discards it.</summary>
    public void Run(Container c, bool stateless = false)
    {
        if (!c.State.CanStart()) throw EngineException.Conflict("AlreadyRunning", $"container '{c.Name}' is already running");
        if (stateless) CheckpointContainer.Discard(parts, c.Name);
        string? state = CheckpointContainer.HasState(parts, c.Name) ? CheckpointContainer.DirOf(parts, c.Name) : null;
        try
        {
            Launch(c, state);
        }
        catch (Exception e) when (e is not EngineException)
        {
            throw new EngineException(FailureKind.Failed, "StartFailed", $"cannot start container '{c.Name}': {e.Message}", e);
        }
    }

    private void Launch(Container c, string? state)
    {
        string name = c.Name;
        var idmap = c.Record.IdMap;
        string run = parts.RunDirOf(name);
        var before = c.Runtime;
        var config = c.Spec;
        var nics = config.BridgedNics.ToList();
        var hostInterfaces = new List<HostInterface>();
        Action<int>? attach = nics.Count == 0 ? null : child =>
        {
            foreach (var nic in nics) hostInterfaces.Add(parts.Networks.Attach(name, nic, child));
        };
        HostLimits.CheckStart(name, c.Record.InitKind, c.RootUid, idmap is not null && !config.IsIdmapIsolated);
        using var revert = new Reverter();
        SafeFd? pidfd = null;
        int? killed = null;
        revert.Add($"the start intent of '{name}'", () =>
        {
            string leftovers = killed is int n and > 0 ? $"; {n} process(es) left in its cgroup were killed" : "";
            c.Runtime = before with { Starting = false, Recovery = $"the start failed{(pidfd is null ? "" : "; its init was killed")}{leftovers}" };
            // On a full disk this fails too: the intent on disk then makes the next daemon start check again.
            cleanup.TryWriteRuntime(c);
        });
        parts.Store.WriteRuntime(name, before with { Starting = true });
        StepTrace.Mark("start: intent written");
        TestHooks.Reach("start-intent");
        Directory.CreateDirectory(Path.Combine(run, "rootfs"));
        Directory.CreateDirectory(Path.Combine(run, "layers"));
        revert.Add($"the cgroup of '{name}'", () =>
        {
            killed = cleanup.KillLeftovers(name);
            cleanup.TryRemoveCgroup(name);
        });
        var cgroup = parts.Cgroups.Create(name, c.RootUid, c.RootGid);
        string? cpuSet = parts.Cpus.Choose(config.Limits, parts.Registry.CpuSetsExcept(c));
        parts.Cgroups.Apply(cgroup, config.Limits, cpuSet);
        // A checkpointable container makes its console in its own devpts (sc-init or criu sends the master back).
        SafeFd? master = null, slave = null;
        string? slavePath = null;
        if (!config.IsStateful && state is null) (master, slave, slavePath) = Sys.OpenPty(c.RootUid, c.RootGid + 5);
        revert.Add($"the console pty of '{name}'", () =>
        {
            master?.Dispose();
            slave?.Dispose();
        });
        StepTrace.Mark("start: cgroup and console ready");
        revert.Add($"the host interfaces of '{name}'", () => cleanup.DetachAll(hostInterfaces));
        int pid;
        SafeFd? own;
        bool shifted = idmap is not null && parts.Options.ShiftIds;
        if (state is not null)
        {
            // The saved processes run on the root they were dumped from.
            shifted = before.Shifted;
            CheckpointCgroups.Recreate(state, cgroup.Join.Unified, c.RootUid, c.RootGid);
            (pid, own) = Restore(c, state, nics, hostInterfaces, shifted, cgroup);
        }
        else
        {
            try
            {
                (pid, own) = parts.ScInit.Create(PlanFor(c, config, cgroup, slavePath, shifted), slave, attach);
            }
            catch (ScInitException e) when (idmap is not null && !shifted && e.Message.Contains("cannot idmap mount", StringComparison.Ordinal))
            {
                shifted = true;
                cleanup.DetachAll(hostInterfaces);
                (pid, own) = parts.ScInit.Create(PlanFor(c, config, cgroup, slavePath, shifted), slave, attach);
            }
        }
        if (own is not null)
        {
            master = own;
            slave = Sys.OpenPtyPeer(own);
        }
        pidfd = Sys.PidfdOpen(pid);
        revert.Add($"the init of '{name}'", () => ContainerCleanup.KillAndReap(pidfd));
        StepTrace.Mark("start: init exec'd");
        TestHooks.Reach("start-cloned");
        var console = new ConsoleLog(master!, slave!, parts.ConsoleLogOf(name), parts.Loop);
        master = slave = null;
        revert.Add($"the console log of '{name}'", console.Dispose);
        var runtime = new RuntimeRecord(true, pid, ProcStat.StartTime(pid), DateTimeOffset.UtcNow, null, null, null, shifted);
        TestHooks.Reach("start-before-state");
        parts.Store.WriteRuntime(name, runtime);
        StepTrace.Mark("start: running recorded");
        TestHooks.Reach("start-after-state");
        var live = new LiveInit(pid, pidfd, cgroup, console)
        {
            CpuSet = cpuSet, LastSample = new(DateTimeOffset.UtcNow, 0), HostInterfaces = hostInterfaces,
        };
        c.Runtime = runtime;
        c.Live = live;
        supervisor.Watch(c, live);
        revert.Success();
        if (state is not null) DiscardRestored(name);
    }

    /// <summary>
    /// Restores the saved processes (criu) on the container's root mounted again, into the cgroup
    /// made above (with the empty cgroups its systemd had); criu makes the NICs again with their
    /// MACs and addresses, and their host ends join the bridges before the restored tree runs. The
    /// state stays until the restored init runs, so a failed restore can be tried again.
    /// </summary>
    private (int Pid, SafeFd Console) Restore(Container c, string state, List<NicSpec> nics, List<HostInterface> hostInterfaces, bool shifted,
        ContainerCgroup cgroup)
    {
        string name = c.Name;
        string root = Path.Combine(parts.RunDirOf(name), "rootfs");
        try
        {
            using (var tree = parts.ScInit.MountRootfs(parts.RootfsOf(c.Record, shifted)))
                Sys.AttachMount(tree, root);
            StepTrace.Mark("restore: root mounted");
            try
            {
                var veths = nics.Select(n => new CheckpointVeth(n.Name, n.HostNameFor(name))).ToList();
                var restored = checkpoint.Restore(state, root, veths, ContainerCheckpoint.CgroupRootsOf(cgroup.Directories), staging =>
                {
                    foreach (var nic in nics) hostInterfaces.Add(parts.Networks.Adopt(name, nic, staging));
                    StepTrace.Mark("restore: network ready");
                });
                StepTrace.Mark("restore: criu done");
                Announce(name, restored.Pid, nics);
                StepTrace.Mark("restore: MACs announced");
                return restored;
            }
            finally
            {
                // The restored mount namespace holds its own copy of the root.
                Sys.DetachMount(root);
            }
        }
        catch (Exception e) when (e is EngineException or NativeException or ScInitException or IOException)
        {
            throw new EngineException(FailureKind.Failed, "RestoreFailed",
                $"cannot restore container '{name}' from its saved state: {e.Message}; the state is kept: start it again, " +
                "or start it with -Stateless to discard the state and boot afresh", e);
        }
    }

    /// <summary>The restored NICs' MACs announced from their ports here (MacAnnouncement); a failure is logged, the container runs on.</summary>
    private static void Announce(string name, int pid, List<NicSpec> nics)
    {
        try
        {
            MacAnnouncement.Send(pid, [.. nics.Where(n => n.HwAddr is not null).Select(n => (Name: n.Name, Mac: n.HwAddr!))]);
        }
        catch (NativeException e)
        {
            EngineLog.Write($"container '{name}' runs restored, but its NICs' MACs could not be announced: {e.Message}");
        }
    }

    private void DiscardRestored(string name)
    {
        try { CheckpointContainer.Discard(parts, name); }
        catch (Exception e) when (e is IOException or NativeException)
        {
            EngineLog.Write($"container '{name}' runs restored, but its used state could not be removed: {e.Message}");
        }
    }

    private LaunchPlan PlanFor(Container c, ContainerConfig config, ContainerCgroup cgroup, string? console, bool shifted)
    {
        var r = c.Record;
        var plan = parts.RootfsOf(r, shifted);
        if (console is null) plan.Add("ownconsole", 1);
        else plan.Add("console", console);
        plan
            .Add("hostname", r.Name)
            .Add("userns", r.IdMap is null ? 0 : 1)
            .Add("idmap", r.IdMap is not null && !shifted ? 1 : 0)
            .Add("nesting", config.IsNesting ? 1 : 0)
            .Add("uid", 0)
            .Add("gid", 0)
            .Add(cgroup.Join)
            .AddAll("netif", config.BridgedNics.Select(n => n.Name))
            .Confine(config)
            .Add("arg", "/sbin/init")
            .Add("env", "container=systemcontainers")
            .Add("env", "PATH=" + ContainerProcess.DefaultPath)
            .Add("env", "TERM=linux")
            .AddAll("env", config.Environment.Select(kv => $"{kv.Key}={kv.Value}"));
        if (config.IsLxcfs && parts.Lxcfs.Views() is var (lxcfs, views))
            plan.Add("lxcfsroot", lxcfs).AddAll("lxcfs", views);
        // A disk inside another's path goes on after it, so the outer one does not cover it.
        foreach (var disk in config.Disks.OrderBy(d => d.Path, StringComparer.Ordinal)) plan.Add(disk);
        return plan;
    }
}
