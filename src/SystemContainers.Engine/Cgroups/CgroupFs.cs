using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>File operations on cgroup directories, shared by the v1 and v2 drivers.</summary>
internal static class CgroupFs
{
    public static void Write(string file, string value)
    {
        using var fd = Sys.Open(file, Libc.O_WRONLY | Libc.O_TRUNC);
        Sys.WriteAll(fd, System.Text.Encoding.ASCII.GetBytes(value));
    }

    public static string Read(string file) => File.ReadAllText(file).Trim();

    /// <summary>
    /// Writes value only where file holds another: a fresh cgroup already holds most defaults, and
    /// some writes walk every sibling or every task group in the kernel (a cpuset's validate_change,
    /// cpu bandwidth's tg_set_bandwidth), a cost that grew with the containers on the host at every start.
    /// </summary>
    public static void Update(string file, string value)
    {
        if (Read(file) != value) Write(file, value);
    }

    /// <summary>A number file; "max" (v2) and the v1 "unlimited" values (2^63 rounded to pages) read as null.</summary>
    public static long? ReadLimit(string file)
    {
        string text = Read(file);
        if (text == "max" || text == "-1") return null;
        long n = long.Parse(text);
        return n >= long.MaxValue / 2 ? null : n;
    }

    public static long ReadLong(string file) => File.Exists(file) ? long.Parse(Read(file)) : 0;

    /// <summary>Every "key value" line of a flat-keyed file (memory.stat, cpu.stat, memory.events), read once; a missing file has none.</summary>
    public static Dictionary<string, long> KeyedValues(string file)
    {
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!File.Exists(file)) return values;
        foreach (var line in File.ReadLines(file))
        {
            int space = line.IndexOf(' ');
            if (space > 0 && long.TryParse(line.AsSpan(space + 1), out long n)) values[line[..space]] = n;
        }
        return values;
    }

    public static long KeyedValue(string file, string key) => KeyedValues(file).GetValueOrDefault(key);

    /// <summary>Waits for a cgroup state file to read the wanted value (freezing is asynchronous).</summary>
    public static void WaitFor(Func<bool> done, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!done())
        {
            if (DateTime.UtcNow > deadline) throw new EngineException(FailureKind.Failed, "CgroupTimeout", $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    /// <summary>mkdir that tolerates an existing directory; returns whether it created it.</summary>
    public static bool MakeDir(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) return false;
            Directory.CreateDirectory(dir);
            return true;
        }
        catch (IOException e)
        {
            throw new EngineException(FailureKind.Failed, "CgroupFailed", $"cannot mkdir {dir}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Removes a cgroup directory bottom-up. Cgroups of exited processes can stay busy for a
    /// moment while the kernel finishes tearing the tasks down, hence the short retry.
    /// </summary>
    public static void RemoveTree(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var child in Directory.GetDirectories(dir)) RemoveTree(child);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                Directory.Delete(dir);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException) when (attempt < 100)
            {
                Thread.Sleep(20);
            }
            catch (IOException e)
            {
                throw new EngineException(FailureKind.Failed, "CgroupBusy", $"cannot rmdir {dir}: {e.Message}", e);
            }
        }
    }

    /// <summary>rmdir of a cgroup that may still hold children or processes; false when it is in use.</summary>
    public static bool TryRemoveEmpty(string dir)
    {
        try
        {
            if (Directory.Exists(dir) && Directory.GetDirectories(dir).Length == 0) Directory.Delete(dir);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// Enables for dir's children each wanted controller that dir has: all in one write, and where
    /// the kernel refuses that, one at a time, so that one it refuses stays off alone and the limit
    /// that needs it fails with its own error at Apply.
    /// </summary>
    public static void EnableControllers(string dir)
    {
        var available = Words(Path.Combine(dir, "cgroup.controllers"));
        var enabled = Words(Path.Combine(dir, "cgroup.subtree_control"));
        var missing = CgroupSubtree.WantedControllers.Where(c => available.Contains(c) && !enabled.Contains(c)).ToList();
        if (missing.Count == 0) return;
        string file = Path.Combine(dir, "cgroup.subtree_control");
        try
        {
            Write(file, string.Join(' ', missing.Select(c => "+" + c)));
            return;
        }
        catch (NativeException)
        {
        }
        foreach (var c in missing)
        {
            try
            {
                Write(file, "+" + c);
            }
            catch (NativeException)
            {
            }
        }
    }

    /// <summary>The words of a space-separated cgroup file (cgroup.controllers, cgroup.subtree_control); none when it is missing.</summary>
    public static string[] Words(string file) =>
        File.Exists(file) ? Read(file).Split(' ', StringSplitOptions.RemoveEmptyEntries) : [];

    /// <summary>Hands a cgroup to the container's root so its systemd can manage sub-cgroups (cgroup v2 delegation).</summary>
    public static void Delegate(string dir, int uid, int gid)
    {
        Sys.Chown(dir, uid, gid);
        foreach (var file in new[] { "cgroup.procs", "cgroup.threads", "cgroup.subtree_control" })
        {
            string path = Path.Combine(dir, file);
            if (File.Exists(path)) Sys.Chown(path, uid, gid);
        }
    }

    /// <summary>The (controllers, path) lines of /proc/pid/cgroup; controllers is "" for cgroup v2.</summary>
    public static IEnumerable<(string Controllers, string Path)> ProcCgroups(int pid)
    {
        string file = pid == 0 ? "/proc/self/cgroup" : $"/proc/{pid}/cgroup";
        foreach (var line in File.ReadAllLines(file))
        {
            var parts = line.Split(':', 3);
            if (parts.Length == 3) yield return (parts[1], parts[2]);
        }
    }
}
