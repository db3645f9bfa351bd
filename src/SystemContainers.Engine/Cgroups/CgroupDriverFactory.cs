namespace SystemContainers.Engine.Cgroups;

/// <summary>Detects how the host mounts cgroups and builds the matching driver.</summary>
public static class CgroupDriverFactory
{
    public static ICgroupDriver Detect(string group)
    {
        var mounts = CgroupMounts();
        var own = CgroupFs.ProcCgroups(0).ToList();
        string? unifiedMount = mounts.FirstOrDefault(m => m.FsType == "cgroup2").MountPoint;
        string unifiedOwn = own.FirstOrDefault(c => c.Controllers == "").Path ?? "/";
        var v1 = new List<CgroupV1Driver.Hierarchy>();
        foreach (var (controllers, path) in own)
        {
            if (controllers == "") continue;
            var wanted = controllers.Split(',');
            var mount = mounts.FirstOrDefault(m => m.FsType == "cgroup" && wanted.All(m.Options.Contains));
            if (mount.MountPoint is not null) v1.Add(new CgroupV1Driver.Hierarchy(controllers, mount.MountPoint, path));
        }
        if (v1.Count == 0)
        {
            if (unifiedMount is null)
                throw new EngineException(FailureKind.Failed, "NoCgroups", "cannot find a mounted cgroup hierarchy in /proc/self/mountinfo");
            CgroupSubtree subtree = SystemdScopeSubtree.Available
                ? new SystemdScopeSubtree(unifiedMount, group)
                : new PlainSubtree(unifiedMount, "/", group, enableControllers: true);
            return new CgroupV2Driver(unifiedMount, subtree, deviceFilter: true);
        }
        // A hybrid host's cgroup2 tree has no controllers: the group sits under the daemon's own cgroup there.
        var unified = unifiedMount is null ? null
            : new CgroupV2Driver(unifiedMount, new PlainSubtree(unifiedMount, unifiedOwn, group, enableControllers: false), deviceFilter: true);
        return new CgroupV1Driver(v1, unified, group);
    }

    /// <summary>The roots of the mounted cgroup (v1) and cgroup2 hierarchies, from /proc/self/mountinfo.</summary>
    internal static List<(string MountPoint, string FsType, string[] Options)> CgroupMounts()
    {
        var result = new List<(string, string, string[])>();
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            int sep = line.IndexOf(" - ", StringComparison.Ordinal);
            if (sep < 0) continue;
            var head = line[..sep].Split(' ');
            var tail = line[(sep + 3)..].Split(' ');
            if (tail.Length < 3 || (tail[0] != "cgroup" && tail[0] != "cgroup2") || head[3] != "/") continue;
            result.Add((head[4].Replace("\\040", " "), tail[0], tail[2].Split(',')));
        }
        return result;
    }
}
