namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// Creates and removes each container's cgroup, nested under the daemon's own cgroup.
/// Limits and statistics come through the same driver (v1 and v2 behind one interface).
/// </summary>
public interface ICgroupDriver
{
    /// <summary>"v1" (legacy or hybrid host) or "v2" (unified host).</summary>
    string Version { get; }

    /// <summary>Creates the container's cgroup(s), delegated to the container's root where systemd manages it.</summary>
    ContainerCgroup Create(string container, int rootUid, int rootGid);

    /// <summary>The cgroup(s) of an existing container, for adoption after a daemon restart.</summary>
    ContainerCgroup Open(string container);

    /// <summary>How a process joins the cgroups that pid is in (exec joins its container's init).</summary>
    CgroupJoin JoinOf(int pid);

    /// <summary>Removes the container's cgroups and every sub-cgroup its init made; they must be empty.</summary>
    void Remove(string container);

    /// <summary>Writes the limits to the container's cgroups (all of them: an unset limit is written as "no limit").</summary>
    void Apply(ContainerCgroup cgroup, Spec.ResourceLimits limits, string? cpuSet);

    /// <summary>Freezes or thaws every process of the container, waiting until the kernel says it is done.</summary>
    void SetFrozen(ContainerCgroup cgroup, bool frozen);

    CgroupStats ReadStats(ContainerCgroup cgroup);

    /// <summary>Removes the daemon's group directories when no container cgroup is left in them (daemon shutdown).</summary>
    void ReleaseGroup();
}

/// <summary>
/// How a process enters a set of cgroups without the kernel's global cgroup_threadgroup_rwsem,
/// whose write side waits for an RCU grace period (about 20 ms here) on every cold start:
/// single-threaded sc-init writes "0" to each v1 hierarchy's tasks file (moving only itself),
/// and the cgroup2 directory is entered at clone time with CLONE_INTO_CGROUP.
/// </summary>
public sealed record CgroupJoin(IReadOnlyList<string> TaskFiles, string? Unified);

/// <summary>A container's cgroup directories, one per hierarchy.</summary>
public sealed record ContainerCgroup(string Container, IReadOnlyList<string> Directories, CgroupJoin Join);
