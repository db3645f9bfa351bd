using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Migration;

/// <summary>What a container's restore needs from criu; restore.log goes to ImagesDir.</summary>
public sealed record CriuRestoreOptions
{
    public required string ImagesDir { get; init; }

    /// <summary>The container's root directory as the host sees it (mounted again before the restore).</summary>
    public required string Root { get; init; }

    /// <summary>What the engine gives back for each external resource of the dump: "net[INODE]:KEY" and so on.</summary>
    public IReadOnlyList<string> External { get; init; } = [];

    /// <summary>
    /// Fds criu gets for external resources by key (criu's inherit_fd): "extNetNs" with the fd of
    /// the network namespace the engine made for the restored tree, as its dump named it external.
    /// </summary>
    public IReadOnlyList<(string Key, SafeFd Fd)> InheritFds { get; init; } = [];

    /// <summary>
    /// Where the dumped root's cgroups are now, per hierarchy (criu's cg_root; a null controller for
    /// all): the restored tree goes into this daemon's cgroups of the container, whatever path the
    /// dump recorded (another daemon's group, on another host or under another name).
    /// </summary>
    public IReadOnlyList<(string? Controller, string Path)> CgroupRoots { get; init; } = [];

    /// <summary>Puts back the cgroups the dump recorded where they are missing (criu's SOFT mode).</summary>
    public bool ManageCgroups { get; init; }

    /// <summary>External mounts the dump keyed by mount point are bound again from the same host paths.</summary>
    public bool AutoExternalMounts { get; init; }

    public bool TcpEstablished { get; init; }

    public bool ShellJob { get; init; }

    public bool OrphanPtsMaster { get; init; }

    public bool FileLocks { get; init; }

    /// <summary>
    /// The network namespace criu runs in: the host ends of the veths it restores are made there,
    /// and its link requests are answered there (an empty one clashes with no interface index).
    /// </summary>
    public SafeFd? NetworkNamespace { get; init; }

    /// <summary>
    /// The restored root becomes a child of the caller (CLONE_PARENT), so the daemon supervises and
    /// reaps it as it does a container it started.
    /// </summary>
    public bool Sibling { get; init; } = true;

    /// <summary>How long criu may stay silent (no step, no answer) before it is killed and the restore fails.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(5);
}
