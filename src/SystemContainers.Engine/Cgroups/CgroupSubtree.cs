namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// The cgroup2 directory that holds this daemon's container cgroups. It must be a directory the
/// daemon may manage (created by it, or delegated to it by systemd) with no processes of its own,
/// so that controllers can be enabled for the containers below it.
/// </summary>
public abstract class CgroupSubtree
{
    /// <summary>The controllers containers need; each is enabled where the host offers it.</summary>
    public static readonly string[] WantedControllers = ["cpuset", "cpu", "io", "memory", "pids"];

    /// <summary>The directory (a host path), valid after <see cref="Ensure"/>.</summary>
    public abstract string Path { get; }

    /// <summary>Makes the directory exist with the wanted controllers enabled for its children; cheap when it already does.</summary>
    public abstract void Ensure();

    /// <summary>Gives the directory up when no container cgroup is left in it (daemon shutdown).</summary>
    public abstract void Release();
}
