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
