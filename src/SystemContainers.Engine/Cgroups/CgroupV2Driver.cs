using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// cgroup v2: one directory per container below the daemon's <see cref="CgroupSubtree"/>. The root
/// is a parameter so tests can run it against a cgroup2 file tree.
/// </summary>
public sealed class CgroupV2Driver : ICgroupDriver
{
    private readonly CgroupSubtree _subtree;
    private readonly bool _deviceFilter;

    /// <param name="root">The cgroup2 mount.</param>
    /// <param name="subtree">Where container cgroups live; it enables the controllers they need.</param>
    /// <param name="deviceFilter">Attach the device policy's BPF program to each container cgroup (a real cgroup2 tree).</param>
    public CgroupV2Driver(string root, CgroupSubtree subtree, bool deviceFilter = false)
    {
        _deviceFilter = deviceFilter;
        Root = root;
        _subtree = subtree;
    }

    public string Version => "v2";
    public string Root { get; }

    /// <summary>The directory that holds the container cgroups.</summary>
    public string GroupDirectory => _subtree.Path;

    public string DirectoryOf(string container) => Path.Combine(_subtree.Path, container);

    public ContainerCgroup Create(string container, int rootUid, int rootGid)
    {
        _subtree.Ensure();
        string dir = DirectoryOf(container);
        CgroupFs.MakeDir(dir);
        try
        {
            CgroupFs.Delegate(dir, rootUid, rootGid);
            if (_deviceFilter) DeviceBpfProgram.Standard.AttachTo(dir);
        }
        catch
        {
            CgroupFs.RemoveTree(dir);
            throw;
        }
        return Open(container);
    }

    public ContainerCgroup Open(string container)
    {
        string dir = DirectoryOf(container);
        return new ContainerCgroup(container, [dir], new CgroupJoin([], dir));
    }

    public CgroupJoin JoinOf(int pid) => new([], UnifiedDirectoryOf(pid));

    /// <summary>The cgroup2 directory pid is in, as a host path.</summary>
    public string? UnifiedDirectoryOf(int pid) =>
        CgroupFs.ProcCgroups(pid).Where(c => c.Controllers == "").Select(c => Path.Join(Root, c.Path)).FirstOrDefault();

    public void Remove(string container) => CgroupFs.RemoveTree(DirectoryOf(container));

    public void Apply(ContainerCgroup cgroup, Spec.ResourceLimits l, string? cpuSet)
    {
        string d = DirectoryOf(cgroup.Container);
        // A limit that is set must reach the kernel; an unset one is written as "no limit" where
        // the controller exists, and needs nothing where it does not.
        void Write(string file, string value, string? key)
        {
            string path = Path.Combine(d, file);
            if (File.Exists(path)) CgroupFs.Update(path, value);
            else if (key is not null) throw Unsupported(key, path);
        }
        string? If(bool set, string key) => set ? key : null;
        Write("cpu.max", $"{(l.CpuQuotaMicroseconds is long q ? q.ToString() : "max")} {l.CpuPeriodMicroseconds}",
            If(l.CpuQuotaMicroseconds is not null, Spec.ResourceLimits.CpuAllowance));
        // systemd's mapping of cpu.shares onto cpu.weight: proportional, each version's default (1024, 100) the same weight.
        long weight = l.CpuShares is long shares ? Math.Clamp(shares * 100 / 1024, 1, 10000) : 100;
        Write("cpu.weight", weight.ToString(), If(l.CpuShares is not null, Spec.ResourceLimits.CpuPriority));
        Write("cpuset.cpus", cpuSet ?? "", If(cpuSet is not null, Spec.ResourceLimits.Cpu));
        string bytes = l.MemoryBytes is long m ? m.ToString() : "max";
        string? memory = If(l.MemoryBytes is not null, Spec.ResourceLimits.Memory);
        Write("memory.max", l.MemorySoft ? "max" : bytes, l.MemorySoft ? null : memory);
        Write("memory.high", l.MemorySoft ? bytes : "max", l.MemorySoft ? memory : null);
        Write("memory.swap.max", l.SwapAllowed ? "max" : "0", If(!l.SwapAllowed, Spec.ResourceLimits.MemorySwap));
        Write("pids.max", l.ProcessesMax is long p ? p.ToString() : "max", If(l.ProcessesMax is not null, Spec.ResourceLimits.Processes));
        // blkio weights run 10-1000 around 500; io.weight runs 1-10000 around 100.
        Write("io.weight", $"default {(l.IoWeight is long w ? Math.Max(1, w / 5) : 100)}", If(l.IoWeight is not null, Spec.ResourceLimits.DiskPriority));
    }

    private EngineException Unsupported(string key, string path)
    {
        string controller = Path.GetFileName(path).Split('.')[0];
        string parent = Path.GetDirectoryName(Path.GetDirectoryName(path)!)!;
        bool offered = CgroupFs.Words(Path.Combine(parent, "cgroup.controllers")).Contains(controller);
        string why = offered
            ? $"the {controller} controller is not enabled in {Path.Combine(parent, "cgroup.subtree_control")}"
            : $"the {controller} controller is not available to {parent} (this host's kernel or cgroup setup lacks it)";
        return new EngineException(FailureKind.Failed, "LimitUnsupported", $"cannot apply {key}: {path} does not exist: {why}");
    }

    public void SetFrozen(ContainerCgroup cgroup, bool frozen)
    {
        string d = DirectoryOf(cgroup.Container);
        CgroupFs.Write(Path.Combine(d, "cgroup.freeze"), frozen ? "1" : "0");
        CgroupFs.WaitFor(() => IsFrozen(d) == frozen, $"{d} to {(frozen ? "freeze" : "thaw")}");
    }

    private static bool IsFrozen(string dir) => CgroupFs.KeyedValue(Path.Combine(dir, "cgroup.events"), "frozen") == 1;

    public CgroupStats ReadStats(ContainerCgroup cgroup)
    {
        string d = DirectoryOf(cgroup.Container);
        string F(string name) => Path.Combine(d, name);
        long current = CgroupFs.ReadLong(F("memory.current"));
        // Each keyed file is read once: a listing of every container's stats reads them all.
        var cpu = CgroupFs.KeyedValues(F("cpu.stat"));
        var events = CgroupFs.KeyedValues(F("memory.events"));
        return new CgroupStats(
            cpu.GetValueOrDefault("usage_usec") * 1000,
            cpu.GetValueOrDefault("user_usec") * 1000,
            cpu.GetValueOrDefault("system_usec") * 1000,
            current,
            File.Exists(F("memory.peak")) ? CgroupFs.ReadLong(F("memory.peak")) : current,
            File.Exists(F("memory.max")) ? CgroupFs.ReadLimit(F("memory.max")) : null,
            CgroupFs.KeyedValue(F("memory.stat"), "file"),
            CgroupFs.ReadLong(F("memory.swap.current")),
            events.GetValueOrDefault("max"),
            events.GetValueOrDefault("oom_kill"),
            CgroupFs.ReadLong(F("pids.current")),
            File.Exists(F("pids.max")) ? CgroupFs.ReadLimit(F("pids.max")) : null,
            IsFrozen(d));
    }

    public void ReleaseGroup() => _subtree.Release();
}
