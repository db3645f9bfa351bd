using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// Ends every process left in a container's cgroups and their sub-cgroups: what a start cut
/// short by a crash or an error left behind, or what a damaged container still runs when it
/// is removed. Frozen cgroups are thawed first (a frozen process cannot die). Each process is
/// signalled through a pidfd opened while it was seen in the cgroup, so a recycled pid is never hit.
/// </summary>
public static class CgroupKiller
{
    /// <summary>Kills until the cgroups are empty; returns how many processes were killed.</summary>
    public static int KillAll(ContainerCgroup cgroup)
    {
        var killed = new HashSet<int>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var dirs = cgroup.Directories.Where(Directory.Exists)
                .SelectMany(d => Directory.EnumerateDirectories(d, "*", SearchOption.AllDirectories).Prepend(d)).ToList();
            var seen = dirs.SelectMany(Members).ToHashSet();
            if (seen.Count == 0) return killed.Count;
            if (DateTime.UtcNow > deadline)
                throw new EngineException(FailureKind.Failed, "CgroupBusy",
                    $"processes {string.Join(", ", seen.Order())} of container '{cgroup.Container}' did not exit after SIGKILL");
            foreach (var dir in dirs) Thaw(dir);
            var pidfds = new List<(int Pid, SafeFd Fd)>();
            try
            {
                foreach (int pid in seen)
                {
                    try { pidfds.Add((pid, Sys.PidfdOpen(pid))); }
                    catch (NativeException) { }
                }
                // Only those still in the cgroup once their pidfd is held are the ones that were seen.
                var still = dirs.SelectMany(Members).ToHashSet();
                foreach (var (pid, fd) in pidfds.Where(p => still.Contains(p.Pid)))
                    if (Sys.PidfdSignal(fd, 9)) killed.Add(pid);
            }
            finally
            {
                foreach (var (_, fd) in pidfds) fd.Dispose();
            }
            Thread.Sleep(10);
        }
    }

    private static IEnumerable<int> Members(string dir)
    {
        string procs = Path.Combine(dir, "cgroup.procs");
        string[] lines;
        try { lines = File.ReadAllLines(procs); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return []; }
        return lines.Select(l => int.TryParse(l, out int pid) ? pid : 0).Where(pid => pid > 0).ToList();
    }

    private static void Thaw(string dir)
    {
        foreach (var (file, thawed) in new[] { ("freezer.state", "THAWED"), ("cgroup.freeze", "0") })
        {
            string path = Path.Combine(dir, file);
            try
            {
                if (File.Exists(path)) File.WriteAllText(path, thawed);
            }
            catch (IOException)
            {
                // A child cgroup's freezer.state is read-only in v1; thawing the parent thaws it.
            }
        }
    }
}
