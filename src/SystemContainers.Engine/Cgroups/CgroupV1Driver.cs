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
                var controllers = h.Controllers.Split(',');
                bool cpuset = controllers.Contains("cpuset");
                if (CgroupFs.MakeDir(groupDir) && cpuset)
                {
                    InheritCpuset(groupDir);
                    // Each container's cpuset is then made with the group's CPUs and nodes, not written into it.
                    CgroupFs.Write(Path.Combine(groupDir, "cgroup.clone_children"), "1");
                }
                CgroupFs.MakeDir(dir);
                dirs.Add(dir);
                // A new v1 cpuset cgroup has no CPUs or memory nodes; nothing could run in it.
                if (cpuset) InheritCpuset(dir);
                if (controllers.Contains("devices")) DevicePolicy.ApplyV1(dir);
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

    /// <summary>The container's directory in the hierarchy that carries controller.</summary>
    private string? Controller(string container, string controller)
    {
        var h = _hierarchies.FirstOrDefault(x => x.Controllers.Split(',').Contains(controller));
        return h is null ? null : DirectoryOf(h, container);
    }

    public void Apply(ContainerCgroup cgroup, Spec.ResourceLimits l, string? cpuSet)
    {
        string c = cgroup.Container;
        if (Controller(c, "cpu") is string cpu)
        {
            CgroupFs.Update(Path.Combine(cpu, "cpu.cfs_period_us"), l.CpuPeriodMicroseconds.ToString());
            CgroupFs.Update(Path.Combine(cpu, "cpu.cfs_quota_us"), (l.CpuQuotaMicroseconds ?? -1).ToString());
            CgroupFs.Update(Path.Combine(cpu, "cpu.shares"), (l.CpuShares ?? 1024).ToString());
        }
        if (Controller(c, "cpuset") is string cpuset)
            CgroupFs.Update(Path.Combine(cpuset, "cpuset.cpus"), cpuSet ?? CgroupFs.Read(Path.Combine(Path.GetDirectoryName(cpuset)!, "cpuset.cpus")));
        if (Controller(c, "memory") is string mem)
        {
            string limit = Path.Combine(mem, "memory.limit_in_bytes"), memsw = Path.Combine(mem, "memory.memsw.limit_in_bytes");
            long hard = l.MemoryBytes is long m && !l.MemorySoft ? m : -1;
            // memory+swap may never be below memory: lift it first, then set memory, then memory+swap.
            // Without swap accounting (swapaccount=0) there is no memory+swap limit to forbid swap with.
            bool swapAccounting = File.Exists(memsw);
            if (!swapAccounting && !l.SwapAllowed && hard > 0)
                throw new EngineException(FailureKind.Failed, "LimitUnsupported",
                    $"cannot apply {Spec.ResourceLimits.MemorySwap}=false: {memsw} does not exist (swap accounting is off on this host)");
            if (swapAccounting) CgroupFs.Write(memsw, "-1");
            CgroupFs.Write(limit, hard.ToString());
            CgroupFs.Write(Path.Combine(mem, "memory.soft_limit_in_bytes"), (l.MemorySoft && l.MemoryBytes is long s ? s : -1).ToString());
            if (swapAccounting) CgroupFs.Write(memsw, (!l.SwapAllowed && hard > 0 ? hard : -1).ToString());
            if (!l.SwapAllowed) CgroupFs.Write(Path.Combine(mem, "memory.swappiness"), "0");
        }
        if (Controller(c, "pids") is string pids)
            CgroupFs.Update(Path.Combine(pids, "pids.max"), l.ProcessesMax?.ToString() ?? "max");
        // Weights exist only under a weight-based I/O scheduler (CFQ, BFQ); an unset weight needs none.
        string? blkio = Controller(c, "blkio");
        var weightFiles = blkio is null ? [] : new[] { "blkio.weight", "blkio.bfq.weight" }.Select(f => Path.Combine(blkio, f)).Where(File.Exists).ToList();
        if (l.IoWeight is not null && weightFiles.Count == 0)
            throw new EngineException(FailureKind.Failed, "LimitUnsupported",
                $"cannot apply {Spec.ResourceLimits.DiskPriority}: {(blkio is null ? "this host has no blkio cgroup controller" : $"{blkio} has no blkio.weight or blkio.bfq.weight (no weight-based I/O scheduler)")}");
        foreach (var file in weightFiles) CgroupFs.Write(file, (l.IoWeight ?? 500).ToString());
    }

    public void SetFrozen(ContainerCgroup cgroup, bool frozen)
    {
        string freezer = Controller(cgroup.Container, "freezer")
            ?? throw new EngineException(FailureKind.Failed, "NoFreezer", "this host has no freezer cgroup controller");
        string state = Path.Combine(freezer, "freezer.state");
        CgroupFs.Write(state, frozen ? "FROZEN" : "THAWED");
        CgroupFs.WaitFor(() => CgroupFs.Read(state) == (frozen ? "FROZEN" : "THAWED"), $"{state} to become {(frozen ? "FROZEN" : "THAWED")}");
    }

    public CgroupStats ReadStats(ContainerCgroup cgroup)
    {
        string c = cgroup.Container;
        string? cpuacct = Controller(c, "cpuacct"), mem = Controller(c, "memory"), pids = Controller(c, "pids"), freezer = Controller(c, "freezer");
        // Each keyed file is read once: a listing of every container's stats reads them all.
        var ticks = cpuacct is null ? [] : CgroupFs.KeyedValues(Path.Combine(cpuacct, "cpuacct.stat"));
        string? M(string f) => mem is null ? null : Path.Combine(mem, f);
        var memStat = M("memory.stat") is string ms ? CgroupFs.KeyedValues(ms) : [];
        // cpuacct.stat counts USER_HZ ticks (100 per second on Linux).
        long Ticks(string key) => ticks.GetValueOrDefault(key) * 10_000_000;
        long MemStat(string key) => memStat.GetValueOrDefault("total_" + key);
        return new CgroupStats(
            cpuacct is null ? 0 : CgroupFs.ReadLong(Path.Combine(cpuacct, "cpuacct.usage")),
            Ticks("user"),
            Ticks("system"),
            M("memory.usage_in_bytes") is string u ? CgroupFs.ReadLong(u) : 0,
            M("memory.max_usage_in_bytes") is string p ? CgroupFs.ReadLong(p) : 0,
            M("memory.limit_in_bytes") is string l ? CgroupFs.ReadLimit(l) : null,
            MemStat("cache"),
            MemStat("swap"),
            // With swap off the limit that is hit is memory+swap's.
            Math.Max(M("memory.failcnt") is string fc ? CgroupFs.ReadLong(fc) : 0, M("memory.memsw.failcnt") is string sfc ? CgroupFs.ReadLong(sfc) : 0),
            M("memory.oom_control") is string oc ? CgroupFs.KeyedValue(oc, "oom_kill") : 0,
            pids is null ? 0 : CgroupFs.ReadLong(Path.Combine(pids, "pids.current")),
            pids is null ? null : CgroupFs.ReadLimit(Path.Combine(pids, "pids.max")),
            freezer is not null && CgroupFs.Read(Path.Combine(freezer, "freezer.state")) != "THAWED");
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
            CgroupFs.Update(Path.Combine(dir, file), CgroupFs.Read(Path.Combine(parent, file)));
    }
}
