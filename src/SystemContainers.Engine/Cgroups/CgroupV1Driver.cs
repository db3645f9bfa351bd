namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// cgroup v1 (legacy or hybrid host): one directory per container in every mounted hierarchy,
/// under the daemon's own cgroup in that hierarchy. On a hybrid host the controller-less
/// cgroup2 tree is delegated to the container too, since that is the tree systemd inside uses.
/// </summary>
public sealed class CgroupV1Driver : ICgroupDriver
{
    private readonly IReadOnlyList<Hierarchy> _hierarchies;
    private readonly CgroupV2Driver? _unified;
    private readonly string _group;

    public sealed record Hierarchy(string Controllers, string Mount, string OwnPath);

    public CgroupV1Driver(IReadOnlyList<Hierarchy> hierarchies, CgroupV2Driver? unified, string group)
    {
        _hierarchies = hierarchies;
        _unified = unified;
        _group = group;
    }

    public string Version => "v1";

    private string DirectoryOf(Hierarchy h, string container) => Path.Combine(Path.Join(h.Mount, h.OwnPath), _group, container);

    public ContainerCgroup Create(string container, int rootUid, int rootGid)
    {
        var dirs = new List<string>();
        try
        {
            foreach (var h in _hierarchies)
            {
                string groupDir = Path.Combine(Path.Join(h.Mount, h.OwnPath), _group);
                string dir = DirectoryOf(h, container);
                bool cpuset = h.Controllers.Split(',').Contains("cpuset");
                if (CgroupFs.MakeDir(groupDir) && cpuset) InheritCpuset(groupDir);
                CgroupFs.MakeDir(dir);
                dirs.Add(dir);
                // A new v1 cpuset cgroup has no CPUs or memory nodes; nothing could run in it.
                if (cpuset) InheritCpuset(dir);
            }
            _unified?.Create(container, rootUid, rootGid);
        }
        catch
        {
            foreach (var dir in dirs) CgroupFs.RemoveTree(dir);
            throw;
        }
        return Open(container);
    }

    public ContainerCgroup Open(string container)
    {
        var dirs = _hierarchies.Select(h => DirectoryOf(h, container)).ToList();
        string? unified = _unified?.DirectoryOf(container);
        var join = new CgroupJoin(dirs.Select(d => Path.Combine(d, "tasks")).ToList(), unified);
        if (unified is not null) dirs.Add(unified);
        return new ContainerCgroup(container, dirs, join);
    }

    public CgroupJoin JoinOf(int pid)
    {
        var tasks = new List<string>();
        foreach (var (controllers, path) in CgroupFs.ProcCgroups(pid))
        {
            var h = _hierarchies.FirstOrDefault(x => x.Controllers == controllers && controllers != "");
            if (h is not null) tasks.Add(Path.Combine(Path.Join(h.Mount, path), "tasks"));
        }
        return new CgroupJoin(tasks, _unified?.UnifiedDirectoryOf(pid));
    }

    public void Remove(string container)
    {
        foreach (var h in _hierarchies) CgroupFs.RemoveTree(DirectoryOf(h, container));
        _unified?.Remove(container);
    }

    public void ReleaseGroup()
    {
        foreach (var h in _hierarchies) CgroupFs.TryRemoveEmpty(Path.Combine(Path.Join(h.Mount, h.OwnPath), _group));
        _unified?.ReleaseGroup();
    }

    private static void InheritCpuset(string dir)
    {
        string parent = Path.GetDirectoryName(dir)!;
        foreach (var file in new[] { "cpuset.cpus", "cpuset.mems" })
            CgroupFs.Write(Path.Combine(dir, file), CgroupFs.Read(Path.Combine(parent, file)));
    }
}
