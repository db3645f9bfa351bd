using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// cgroup v2: one directory per container at &lt;root&gt;/&lt;own&gt;/&lt;group&gt;/&lt;name&gt;, where &lt;own&gt; is the
/// daemon's cgroup. The root is a parameter so tests can run it against a cgroup2 file tree.
/// </summary>
public sealed class CgroupV2Driver : ICgroupDriver
{
    private static readonly string[] WantedControllers = ["cpuset", "cpu", "io", "memory", "pids"];
    private readonly string _groupDir;
    private readonly bool _enableControllers;
    private readonly bool _deviceFilter;
    private readonly object _setupLock = new();
    private bool _groupReady;

    /// <param name="root">The cgroup2 mount.</param>
    /// <param name="ownPath">The daemon's cgroup relative to the mount ("/" or "/a/b").</param>
    /// <param name="group">The directory under the daemon's cgroup that holds container cgroups.</param>
    /// <param name="enableControllers">False for the controller-less cgroup2 tree of a v1 host.</param>
    /// <param name="deviceFilter">Attach the device policy's BPF program to each container cgroup (a real cgroup2 tree).</param>
    public CgroupV2Driver(string root, string ownPath, string group, bool enableControllers = true, bool deviceFilter = false)
    {
        _deviceFilter = deviceFilter;
        Root = root;
        OwnDir = Path.Join(root, ownPath);
        _groupDir = Path.Combine(OwnDir, group);
        _enableControllers = enableControllers;
    }

    public string Version => "v2";
    public string Root { get; }
    public string OwnDir { get; }

    public string DirectoryOf(string container) => Path.Combine(_groupDir, container);

    public ContainerCgroup Create(string container, int rootUid, int rootGid)
    {
        EnsureGroup();
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
        string F(string name) => Path.Combine(d, name);
        CgroupFs.WriteIfPresent(F("cpu.max"), $"{(l.CpuQuotaMicroseconds is long q ? q.ToString() : "max")} {l.CpuPeriodMicroseconds}");
        // systemd's mapping of cpu.shares (2-262144, default 1024) onto cpu.weight (1-10000, default 100).
        long weight = l.CpuShares is long shares ? 1 + (shares - 2) * 9999 / 262142 : 100;
        CgroupFs.WriteIfPresent(F("cpu.weight"), weight.ToString());
        CgroupFs.WriteIfPresent(F("cpuset.cpus"), cpuSet ?? "");
        string bytes = l.MemoryBytes is long m ? m.ToString() : "max";
        CgroupFs.WriteIfPresent(F("memory.max"), l.MemorySoft ? "max" : bytes);
        CgroupFs.WriteIfPresent(F("memory.high"), l.MemorySoft ? bytes : "max");
        CgroupFs.WriteIfPresent(F("memory.swap.max"), l.SwapAllowed ? "max" : "0");
        CgroupFs.WriteIfPresent(F("pids.max"), l.ProcessesMax is long p ? p.ToString() : "max");
        // blkio weights run 10-1000 around 500; io.weight runs 1-10000 around 100.
        CgroupFs.WriteIfPresent(F("io.weight"), $"default {(l.IoWeight is long w ? Math.Max(1, w / 5) : 100)}");
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
        return new CgroupStats(
            CgroupFs.KeyedValue(F("cpu.stat"), "usage_usec") * 1000,
            CgroupFs.KeyedValue(F("cpu.stat"), "user_usec") * 1000,
            CgroupFs.KeyedValue(F("cpu.stat"), "system_usec") * 1000,
            current,
            File.Exists(F("memory.peak")) ? CgroupFs.ReadLong(F("memory.peak")) : current,
            File.Exists(F("memory.max")) ? CgroupFs.ReadLimit(F("memory.max")) : null,
            CgroupFs.KeyedValue(F("memory.stat"), "file"),
            CgroupFs.ReadLong(F("memory.swap.current")),
            CgroupFs.KeyedValue(F("memory.events"), "max"),
            CgroupFs.KeyedValue(F("memory.events"), "oom_kill"),
            CgroupFs.ReadLong(F("pids.current")),
            File.Exists(F("pids.max")) ? CgroupFs.ReadLimit(F("pids.max")) : null,
            IsFrozen(d));
    }

    public void ReleaseGroup()
    {
        lock (_setupLock)
        {
            if (CgroupFs.TryRemoveEmpty(_groupDir)) _groupReady = false;
        }
    }

    /// <summary>
    /// Creates the group directory and enables the wanted controllers down to it. A cgroup with
    /// processes cannot delegate controllers, so when the daemon's own cgroup refuses (EBUSY)
    /// the daemon moves itself into a leaf beside the group first.
    /// </summary>
    private void EnsureGroup()
    {
        lock (_setupLock)
        {
            if (_groupReady) return;
            CgroupFs.MakeDir(_groupDir);
            if (_enableControllers)
            {
                string controllers = EnabledSet(Path.Combine(OwnDir, "cgroup.controllers"));
                if (controllers.Length > 0)
                {
                    try
                    {
                        CgroupFs.Write(Path.Combine(OwnDir, "cgroup.subtree_control"), controllers);
                    }
                    catch (NativeException e) when (e.Errno == Libc.EBUSY)
                    {
                        string leaf = Path.Combine(OwnDir, "systemcontainerd");
                        CgroupFs.MakeDir(leaf);
                        CgroupFs.Write(Path.Combine(leaf, "cgroup.procs"), Environment.ProcessId.ToString());
                        CgroupFs.Write(Path.Combine(OwnDir, "cgroup.subtree_control"), controllers);
                    }
                    string groupControllers = EnabledSet(Path.Combine(_groupDir, "cgroup.controllers"));
                    if (groupControllers.Length > 0)
                        CgroupFs.Write(Path.Combine(_groupDir, "cgroup.subtree_control"), groupControllers);
                }
            }
            _groupReady = true;
        }
    }

    private static string EnabledSet(string controllersFile)
    {
        if (!File.Exists(controllersFile)) return "";
        var available = CgroupFs.Read(controllersFile).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return string.Join(' ', WantedControllers.Where(available.Contains).Select(c => "+" + c));
    }
}
