namespace SystemContainers.Engine.Tests;

/// <summary>
/// The host's cgroup layout as the tests see it, read from /proc/self/mountinfo and
/// /proc/&lt;pid&gt;/cgroup: so a test follows the host (v1, hybrid or pure v2) instead of assuming one.
/// </summary>
public static class HostCgroups
{
    /// <summary>One hierarchy a process is in: its controllers ("" for cgroup2) and its directory on the host.</summary>
    public sealed record Membership(string Controllers, string Mount, string Path)
    {
        public string Directory => System.IO.Path.Join(Mount, Path);
    }

    private static readonly List<(string MountPoint, string FsType, string[] Options)> Mounts = ReadMounts();

    /// <summary>"v1" where any v1 hierarchy is mounted (legacy or hybrid), "v2" on a pure cgroup2 host.</summary>
    public static string Version { get; } = Mounts.Any(m => m.FsType == "cgroup") ? "v1" : "v2";

    /// <summary>Where cgroup2 is mounted, if it is.</summary>
    public static string? Cgroup2Mount { get; } = Mounts.FirstOrDefault(m => m.FsType == "cgroup2").MountPoint;

    public static IReadOnlyList<Membership> Of(int pid)
    {
        var result = new List<Membership>();
        foreach (var line in File.ReadAllLines($"/proc/{pid}/cgroup"))
        {
            var parts = line.Split(':', 3);
            var wanted = parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries);
            var mount = wanted.Length == 0
                ? Mounts.FirstOrDefault(m => m.FsType == "cgroup2")
                : Mounts.FirstOrDefault(m => m.FsType == "cgroup" && wanted.All(m.Options.Contains));
            if (mount.MountPoint is not null) result.Add(new Membership(parts[1], mount.MountPoint, parts[2]));
        }
        return result;
    }

    /// <summary>The process's directory in the hierarchy that carries controller (its cgroup2 directory on v2).</summary>
    public static string DirectoryOf(int pid, string controller) =>
        Of(pid).First(m => Version == "v2" ? m.Controllers == "" : m.Controllers.Split(',').Contains(controller)).Directory;

    private static List<(string, string, string[])> ReadMounts()
    {
        var result = new List<(string, string, string[])>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            int sep = line.IndexOf(" - ", StringComparison.Ordinal);
            var head = line[..sep].Split(' ');
            var tail = line[(sep + 3)..].Split(' ');
            if ((tail[0] == "cgroup" || tail[0] == "cgroup2") && head[3] == "/") result.Add((head[4].Replace("\\040", " "), tail[0], tail[2].Split(',')));
        }
        return result;
    }
}

/// <summary>A fact about the v1 driver, skipped with the reason on a host without cgroup v1 hierarchies.</summary>
public sealed class CgroupV1FactAttribute : FactAttribute
{
    public CgroupV1FactAttribute()
    {
        if (HostCgroups.Version != "v1") Skip = "this host mounts no cgroup v1 hierarchy (pure cgroup v2)";
    }
}

/// <summary>A fact about the v2 driver for real, skipped with the reason on a host with cgroup v1 hierarchies.</summary>
public sealed class CgroupV2FactAttribute : FactAttribute
{
    public CgroupV2FactAttribute()
    {
        if (HostCgroups.Version != "v2") Skip = "this host mounts cgroup v1 hierarchies (the v1 driver's test covers it)";
    }
}

/// <summary>A fact about lxcfs views, skipped with the reason on a host with no lxcfs installed or mounted.</summary>
public sealed class LxcfsFactAttribute : FactAttribute
{
    public LxcfsFactAttribute()
    {
        if (!File.Exists(EngineOptions.DefaultLxcfsPath) && !Runtime.Lxcfs.IsLxcfsMount(Runtime.Lxcfs.SystemMount))
            Skip = $"this host has no lxcfs ({EngineOptions.DefaultLxcfsPath} is not installed and none is mounted at {Runtime.Lxcfs.SystemMount})";
    }
}
