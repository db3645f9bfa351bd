namespace SystemContainers.Engine.Migration;

/// <summary>
/// A container's process tree dumped by criu and restored from it (docs/architecture.md, "CRIU and
/// stateful stop and start"). criu takes the tree with its namespaces; the engine keeps what it
/// made for the container: the cgroups (made and limited before the restore, criu only moves the
/// tasks in, SOFT mode), the bind mounts of host files (external, keyed by mount point) and the
/// NICs. A veth that criu dumped it would make again itself, which criu 4.2 gets wrong inside a
/// user namespace (research notes, section 1.2 #4), so the engine takes each NIC out once the tree
/// is frozen and makes it again, with its MAC and addresses, when criu has made the namespaces.
/// The console is a terminal of the container's own devpts whose master is the daemon's: criu
/// makes a new master on restore and hands it over.
/// </summary>
public sealed class ContainerCheckpoint(CriuClient criu)
{
    public CriuClient Criu { get; } = criu;

    /// <summary>
    /// Dumps the tree of initPid into imagesDir and ends it, or with leaveRunning thaws it after;
    /// freezer is the cgroup criu freezes it through, onFrozen runs once the tree is frozen and its
    /// network locked, onDumped once the images are written and the tree is still frozen. On
    /// failure criu thaws the tree and it runs on.
    /// </summary>
    public void Dump(int initPid, string imagesDir, string? freezer, Action onFrozen, bool leaveRunning = false, Action? onDumped = null)
    {
        Criu.Dump(new CriuDumpOptions
        {
            Pid = initPid,
            ImagesDir = imagesDir,
            AutoExternalMounts = true,
            ManageCgroups = true,
            FreezeCgroup = freezer,
            TcpEstablished = true,
            FileLocks = true,
            OrphanPtsMaster = true,
            LeaveRunning = leaveRunning,
        }, (step, _) =>
        {
            if (step == "network-lock") onFrozen();
            else if (step == "post-dump") onDumped?.Invoke();
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
    /// Restores the tree in imagesDir with root as its root mount; onNamespaces gets the pid of
    /// the restored init once its namespaces exist, before any of its files or sockets are made.
    /// The restored init is the caller's child. Returns its pid and the console's new master.
    /// </summary>
    public (int Pid, Interop.SafeFd Console) Restore(string imagesDir, string root, Action<int> onNamespaces,
        IReadOnlyList<(string? Controller, string Path)> cgroupRoots)
    {
        Interop.SafeFd? console = null;
        try
        {
            int pid = Criu.Restore(new CriuRestoreOptions
            {
                ImagesDir = imagesDir,
                Root = root,
                AutoExternalMounts = true,
                ManageCgroups = true,
                TcpEstablished = true,
                FileLocks = true,
                OrphanPtsMaster = true,
                Sibling = true,
                CgroupRoots = cgroupRoots,
            }, (step, pid) =>
            {
                if (step == "setup-namespaces") onNamespaces(pid);
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
            throw;
        }
    }
}
