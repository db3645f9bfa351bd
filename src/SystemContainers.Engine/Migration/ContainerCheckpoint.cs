using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;

namespace SystemContainers.Engine.Migration;

/// <summary>A NIC criu restores: its name in the container and the name of its host end.</summary>
public sealed record CheckpointVeth(string Inside, string Host);

/// <summary>
/// The cgroup criu freezes a tree through (its FreezeCgroup: v1's freezer directory or the cgroup2
/// one) and how the engine freezes or thaws it, waiting until it is so (the cgroup driver's).
/// </summary>
public sealed record CheckpointFreezer(string Directory, Action<bool> SetFrozen);

/// <summary>
/// A container's process tree dumped by criu and restored from it (docs/architecture.md, "CRIU and
/// stateful stop and start"). criu takes the tree with its namespaces, the network one with its
/// veths, addresses and routes; the engine keeps what it made for the container: the cgroups (made
/// and limited before the restore, criu only moves the tasks in, SOFT mode), the bind mounts of
/// host files (external, keyed by mount point) and the bridges. criu restores from an empty
/// network namespace of its own, where it makes each veth's host end: in the daemon's, criu 4.2's
/// request inside a user namespace would name an interface index the bridge has (research notes,
/// section 1.2 #4). The caller moves the host ends to their bridges once the tree is restored,
/// before its network is unlocked. The console is a terminal of the container's own devpts whose
/// master is the daemon's: criu makes a new master on restore and hands it over.
/// </summary>
public sealed class ContainerCheckpoint(CriuClient criu)
{
    public CriuClient Criu { get; } = criu;

    /// <summary>
    /// Dumps the tree of initPid into imagesDir and ends it, or with leaveRunning thaws it after;
    /// freezer is the cgroup criu freezes it through, onDumped runs once the images are written and
    /// the tree is still frozen; irmapScanPaths name where criu finds the files of inotify watches
    /// on overlayfs. On failure criu thaws the tree and it runs on.
    /// </summary>
    public void Dump(int initPid, string imagesDir, CheckpointFreezer? freezer, bool leaveRunning = false, Action? onDumped = null,
        IReadOnlyList<string>? irmapScanPaths = null)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                DumpOnce(initPid, imagesDir, freezer, leaveRunning, onDumped, irmapScanPaths);
                return;
            }
            catch (EngineException e) when (attempt < NetlinkAttempts && e.Message.Contains(NetlinkUnread, StringComparison.Ordinal))
            {
                // A netlink socket the tree had not read yet (systemd-networkd's, told of a carrier
                // change or a lease) is read once criu has thawed the tree: the next dump finds it empty.
                EngineLog.Write($"dump of pid {initPid} tried again (attempt {attempt + 1}): {e.Message}");
                foreach (string file in Directory.EnumerateFiles(imagesDir)) File.Delete(file);
                Thread.Sleep(NetlinkPause * attempt);
            }
        }
    }

    /// <summary>criu's words (sk-netlink.c) for a netlink socket with messages queued, which it cannot dump.</summary>
    private const string NetlinkUnread = "The socket has data to read";
    private const int NetlinkAttempts = 4;
    private static readonly TimeSpan NetlinkPause = TimeSpan.FromMilliseconds(300);

    private void DumpOnce(int initPid, string imagesDir, CheckpointFreezer? freezer, bool leaveRunning, Action? onDumped, IReadOnlyList<string>? irmapScanPaths)
    {
        bool frozenHere = false;
        try
        {
            DumpFrozen(initPid, imagesDir, freezer, leaveRunning, onDumped, irmapScanPaths, () => frozenHere = true);
        }
        catch
        {
            // criu gives a tree it found frozen back frozen: it runs on as it ran before the dump.
            if (frozenHere) freezer!.SetFrozen(false);
            throw;
        }
        if (frozenHere && leaveRunning) freezer!.SetFrozen(false);
    }

    /// <summary>
    /// criu freezes the tree by writing the freezer and then looking at it every 100 ms (seize.c,
    /// freeze_processes), so the tree sat frozen ~100 ms longer than it takes to freeze. At its
    /// pre-dump step (its start done, the freeze next) the engine freezes it, waiting 5 ms at a
    /// time; criu finds it frozen and goes on at once. frozen is called once it is.
    /// </summary>
    private void DumpFrozen(int initPid, string imagesDir, CheckpointFreezer? freezer, bool leaveRunning, Action? onDumped, IReadOnlyList<string>? irmapScanPaths,
        Action frozen)
    {
        Criu.Dump(new CriuDumpOptions
        {
            Pid = initPid,
            ImagesDir = imagesDir,
            AutoExternalMounts = true,
            ManageCgroups = true,
            FreezeCgroup = freezer?.Directory,
            TcpEstablished = true,
            FileLocks = true,
            OrphanPtsMaster = true,
            LeaveRunning = leaveRunning,
            IrmapScanPaths = irmapScanPaths ?? [],
        }, (step, _) =>
        {
            StepTrace.Mark($"criu dump: {step}");
            if (step == "pre-dump" && freezer is not null)
            {
                freezer.SetFrozen(true);
                frozen();
                StepTrace.Mark("criu dump: frozen by the engine");
            }
            if (step == "post-dump") onDumped?.Invoke();
        });
    }

    /// <summary>
    /// The cgroup directories a restored tree goes into, as criu's cgroup roots: one per
    /// v1 hierarchy, named as /proc/self/cgroup names its controllers ("name=systemd" for a named
    /// one), and the cgroup2 tree's as the root for every hierarchy not named (criu's name for it
    /// is not "unified"), which on a v2 host is all of them.
    /// </summary>
    public static IReadOnlyList<(string? Controller, string Path)> CgroupRootsOf(IEnumerable<string> directories)
    {
        var mounts = Cgroups.CgroupDriverFactory.CgroupMounts();
        var hierarchies = Cgroups.CgroupFs.ProcCgroups(0).Where(c => c.Controllers != "")
            .Select(c => (Controller: (string?)c.Controllers, mounts.FirstOrDefault(m => m.FsType == "cgroup" && c.Controllers.Split(',').All(m.Options.Contains)).MountPoint))
            .Concat(mounts.Where(m => m.FsType == "cgroup2").Select(m => (Controller: (string?)null, m.MountPoint)))
            .Where(h => h.MountPoint is not null).ToList();
        var roots = new List<(string?, string)>();
        foreach (var dir in directories)
        {
            var (controller, mount) = hierarchies.Where(h => dir.StartsWith(h.MountPoint + "/", StringComparison.Ordinal)).MaxBy(h => h.MountPoint.Length);
            if (mount is not null) roots.Add((controller, dir[mount.Length..]));
        }
        return roots;
    }

    /// <summary>
    /// Restores the tree in imagesDir with root as its root mount. criu makes each of veths again
    /// with its host end in an empty network namespace; onRestored gets that namespace once the
    /// tree is restored and before it runs, to move the host ends out; cgroupRoots are where the
    /// tree goes (CgroupRootsOf). The restored init is the caller's child. Returns its pid and the console's new master.
    /// </summary>
    public (int Pid, SafeFd Console) Restore(string imagesDir, string root, IReadOnlyList<CheckpointVeth> veths,
        IReadOnlyList<(string? Controller, string Path)> cgroupRoots, Action<SafeFd> onRestored)
    {
        SafeFd? console = null;
        int forked = 0;
        using var staging = NetworkNamespaceThread.CreateEmpty();
        try
        {
            int pid = Criu.Restore(new CriuRestoreOptions
            {
                ImagesDir = imagesDir,
                Root = root,
                External = [.. veths.Select(v => $"veth[{v.Inside}]:{v.Host}")],
                NetworkNamespace = staging,
                AutoExternalMounts = true,
                ManageCgroups = true,
                TcpEstablished = true,
                FileLocks = true,
                OrphanPtsMaster = true,
                Sibling = true,
                CgroupRoots = cgroupRoots,
            }, (step, notified) =>
            {
                StepTrace.Mark($"criu restore: {step}");
                if (step == "setup-namespaces") forked = notified;
                if (step == "post-restore") onRestored(staging);
            }, master =>
            {
                console?.Dispose();
                console = master;
            });
            return (pid, console ?? throw new EngineException(FailureKind.Failed, "CriuFailed",
                $"criu restore from {imagesDir} gave no console master (orphan-pts-master); see {Path.Combine(imagesDir, "restore.log")}"));
        }
        catch
        {
            console?.Dispose();
            EndForkedRoot(forked);
            throw;
        }
    }

    /// <summary>
    /// The tree's root is this process's child (rst_sibling), so a restore that fails after forking
    /// it leaves it here to end and reap; criu cannot, and it would stay a zombie of the daemon.
    /// </summary>
    private static void EndForkedRoot(int pid)
    {
        if (pid <= 0) return;
        SafeFd pidfd;
        try { pidfd = Sys.PidfdOpen(pid); }
        catch (NativeException) { return; }
        using (pidfd)
        {
            // Only our child: nothing but this process reaps it, so its pid cannot have been reused.
            if (State.ProcStat.ParentOf(pid) != Environment.ProcessId) return;
            Sys.PidfdSignal(pidfd, 9);
            Sys.ReapPidfd(pidfd, wait: true);
        }
    }
}
