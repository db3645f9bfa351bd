namespace SystemContainers.Engine.Migration;

/// <summary>What a container's dump needs from criu; the images and dump.log go to ImagesDir.</summary>
public sealed record CriuDumpOptions
{
    /// <summary>The host pid of the tree's root (the container's init).</summary>
    public required int Pid { get; init; }

    public required string ImagesDir { get; init; }

    /// <summary>The container's root directory as the host sees it.</summary>
    public string? Root { get; init; }

    /// <summary>
    /// Resources criu leaves to the engine, in criu's --external syntax: "net[INODE]:KEY" for the
    /// network namespace, "mnt[PATH]:KEY" for a bind mount, "tty[RDEV:DEV]" for the console.
    /// </summary>
    public IReadOnlyList<string> External { get; init; } = [];

    /// <summary>Mount points criu dumps as bind mounts of nothing it must copy (lxcfs, /dev binds).</summary>
    public IReadOnlyList<string> SkipMounts { get; init; } = [];

    /// <summary>Records the tree's cgroups (criu's SOFT mode) so restore puts back those the engine did not make.</summary>
    public bool ManageCgroups { get; init; }

    /// <summary>The freezer cgroup (v1) or cgroup directory (v2) of the tree: criu freezes it all at once.</summary>
    public string? FreezeCgroup { get; init; }

    /// <summary>Bind mounts of host files (the /dev nodes, lxcfs) are external, keyed by mount point, with their sharing.</summary>
    public bool AutoExternalMounts { get; init; }

    public bool TcpEstablished { get; init; }

    /// <summary>The tree's session and process group lead outside it (a shell job), as with a foreground command.</summary>
    public bool ShellJob { get; init; }

    public bool OrphanPtsMaster { get; init; }

    /// <summary>Keep the tree running after the dump (a stateful snapshot) rather than killing it.</summary>
    public bool LeaveRunning { get; init; }

    public bool FileLocks { get; init; }

    /// <summary>
    /// Where criu looks for the paths of inotify watches whose file handles it cannot open (on
    /// overlayfs); any path given also makes criu resolve every watch by path (force_irmap).
    /// </summary>
    public IReadOnlyList<string> IrmapScanPaths { get; init; } = [];

    /// <summary>How long criu may stay silent (no step, no answer) before it is killed and the dump fails.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);
}
