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
    private readonly object _setupLock = new();
    private bool _groupReady;

    /// <param name="root">The cgroup2 mount.</param>
    /// <param name="ownPath">The daemon's cgroup relative to the mount ("/" or "/a/b").</param>
    /// <param name="group">The directory under the daemon's cgroup that holds container cgroups.</param>
    /// <param name="enableControllers">False for the controller-less cgroup2 tree of a v1 host.</param>
    public CgroupV2Driver(string root, string ownPath, string group, bool enableControllers = true)
    {
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
