using System.Text;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Host;

/// <summary>
/// The kernel limits that bite when containers are packed densely, the value each needs for N
/// containers, and the fix: a sysctl.d file that keeps the values across boots, applied at once.
/// </summary>
public static class HostLimits
{
    /// <summary>A sysctl: the least it should be on any host (mostly the kernel's default), what each container needs of it, and why it matters.</summary>
    public sealed record Limit(string Key, long Floor, long PerContainer, string Why)
    {
        public long NeededFor(int containers) => Math.Max(Floor, PerContainer * containers);
    }

    // The kernel charges inotify instances and watches at every user namespace level up to the host,
    // where they count against the namespace's creator (root): every container's add up. Keys count
    // per host uid, which isolated id maps (the default) give each container its own of.
    // systemd, journald, udevd, logind and networkd each hold inotify instances and watch many paths.
    public static readonly IReadOnlyList<Limit> All =
    [
        new("fs.inotify.max_user_instances", 128, 64, "each systemd container holds tens of inotify instances, all counted against root on the host"),
        new("fs.inotify.max_user_watches", 8192, 8192, "systemd and journald watch many paths, all counted against root on the host"),
        new("kernel.keys.maxkeys", 200, 0, "systemd makes session keyrings; keys count per host uid, so containers sharing an id map (security.idmap.isolated=false) share 200"),
        new("kernel.pid_max", 32768, 500, "every container's processes take host pids"),
        new("net.ipv4.neigh.default.gc_thresh1", 128, 0, "below this many neighbour entries none are collected"),
        new("net.ipv4.neigh.default.gc_thresh2", 512, 1, "each container on a bridge is a neighbour entry; past this they are collected eagerly"),
        new("net.ipv4.neigh.default.gc_thresh3", 1024, 2, "the hard limit on neighbour entries; past it new containers cannot be reached"),
        new("vm.max_map_count", 262144, 0, "a per-process limit that databases and JVMs inside containers exceed at the kernel's 65530"),
    ];

    // What one Debian/systemd container takes of the quotas charged to the host, measured: about 9 inotify instances, 6 to 7 keys.
    private const int InotifyPerSystemd = 10, KeysPerSystemd = 8;

    /// <summary>
    /// Refuses the start of a systemd container that would cross a quota the kernel charges on
    /// the host, where systemd would fail units one by one instead: inotify instances count
    /// against root for every container (a user namespace charges its creator), keys against a
    /// container's host root uid, which the containers that share an id map share.
    /// </summary>
    public static void CheckStart(string container, string initKind, int hostRootUid, bool sharedMap)
    {
        if (initKind != Images.InitKinds.Systemd) return;
        if (Read("fs.inotify.max_user_instances") is long instances)
        {
            int held = RootInotifyInstances();
            if (held + InotifyPerSystemd > instances)
                throw Refusal(container, "fs.inotify.max_user_instances", instances, held, InotifyPerSystemd,
                    $"root and its containers hold {held} inotify instances on this host");
        }
        if (sharedMap && hostRootUid != 0 && Read("kernel.keys.maxkeys") is long maxKeys && KeysOf(hostRootUid) is int keys && keys + KeysPerSystemd > maxKeys)
            throw Refusal(container, "kernel.keys.maxkeys", maxKeys, keys, KeysPerSystemd,
                $"host uid {hostRootUid}, shared by the containers of one id map, holds {keys} keys");
    }

    internal static EngineException Refusal(string container, string key, long limit, long held, int more, string why) =>
        EngineException.Conflict("HostLimitReached",
            $"cannot start container '{container}': {key} is {limit}, {why}, and a systemd container needs about {more} more; "
            + $"raise it to at least {held + more} (Test-SystemContainerHost -Fix, or sysctl -w {key}={held + more})");

    /// <summary>
    /// The inotify instances charged to host root: those of root's processes and of every
    /// process in another user namespace (the daemon's containers, whose namespaces root made).
    /// </summary>
    public static int RootInotifyInstances()
    {
        string own = new FileInfo("/proc/self/ns/user").LinkTarget ?? "";
        int count = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out _)) continue;
            try
            {
                if (new FileInfo(Path.Combine(dir, "ns/user")).LinkTarget == own && EffectiveUid(dir) != 0) continue;
                count += InotifyInstancesOf(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A process that exited meanwhile holds nothing.
            }
        }
        return count;
    }

    /// <summary>The inotify instances among a process's open files (procDir: /proc/&lt;pid&gt;).</summary>
    public static int InotifyInstancesOf(string procDir) =>
        Directory.EnumerateFileSystemEntries(Path.Combine(procDir, "fd")).Count(fd => new FileInfo(fd).LinkTarget == "anon_inode:inotify");

    private static int EffectiveUid(string procDir)
    {
        var line = File.ReadLines(Path.Combine(procDir, "status")).FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        var f = line?.Split('\t', StringSplitOptions.RemoveEmptyEntries);
        return f is { Length: > 2 } && int.TryParse(f[2], out int uid) ? uid : -1;
    }

    /// <summary>The keys a host uid holds against kernel.keys.maxkeys (/proc/key-users: "uid: usage nkeys/nikeys qnkeys/maxkeys ..."), null if it holds none.</summary>
    public static int? KeysOf(int uid)
    {
        foreach (var line in File.ReadLines("/proc/key-users"))
        {
            var f = line.Split((char[])[' ', ':'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length >= 4 && f[0] == uid.ToString() && int.TryParse(f[3].Split('/')[0], out int keys)) return keys;
        }
        return null;
    }

    public static string ProcPath(string key) => "/proc/sys/" + key.Replace('.', '/');

    /// <summary>The current value; null where this kernel or network namespace does not show the key.</summary>
    public static long? Read(string key)
    {
        string path = ProcPath(key);
        if (!File.Exists(path)) return null;
        return long.TryParse(File.ReadAllText(path).Split((char[])[' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(), out long v) ? v : null;
    }

    /// <summary>One value raised by Fix: the key, what it was and what it is now.</summary>
    public sealed record Change(string Key, long Before, long After);

    /// <summary>
    /// Raises every limit below what containers need, never lowering one: writes the raised ones
    /// to sysctlFile (keeping what an earlier fix wrote there) and applies them now. A key this
    /// kernel or network namespace does not show is left alone: its value here is unknown.
    /// </summary>
    public static IReadOnlyList<Change> Fix(int containers, string sysctlFile)
    {
        var previous = ReadSysctlFile(sysctlFile);
        var changes = new List<Change>();
        var lines = new StringBuilder("# Written by systemcontainerd (Test-SystemContainerHost -Fix): host limits for dense containers.\n");
        foreach (var limit in All)
        {
            long wanted = Math.Max(limit.NeededFor(containers), previous.GetValueOrDefault(limit.Key));
            if (Read(limit.Key) is not long current || (current >= wanted && !previous.ContainsKey(limit.Key))) continue;
            long target = Math.Max(wanted, current);
            lines.Append($"{limit.Key} = {target}\n");
            if (current >= target) continue;
            WriteSysctl(limit.Key, target);
            changes.Add(new Change(limit.Key, current, target));
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(sysctlFile))!);
        Sys.WriteFileAtomic(sysctlFile, Encoding.UTF8.GetBytes(lines.ToString()), 0x1a4);
        return changes;
    }

    private static void WriteSysctl(string key, long value)
    {
        try
        {
            Sys.WriteText(ProcPath(key), value.ToString());
        }
        catch (NativeException e)
        {
            throw new EngineException(FailureKind.Failed, "SysctlWriteFailed", e.Message);
        }
    }

    private static Dictionary<string, long> ReadSysctlFile(string file)
    {
        var values = new Dictionary<string, long>();
        if (!File.Exists(file)) return values;
        foreach (var line in File.ReadLines(file))
        {
            var parts = line.Split('=', 2, StringSplitOptions.TrimEntries);
            if (parts.Length == 2 && !parts[0].StartsWith('#') && long.TryParse(parts[1], out long v)) values[parts[0]] = v;
        }
        return values;
    }
}
