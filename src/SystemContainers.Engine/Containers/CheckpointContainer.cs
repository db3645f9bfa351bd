using SystemContainers.Engine.Migration;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Stops a running container with its state (Stop-SystemContainer -Stateful): criu dumps its
/// processes into the container's directory and ends them; the next start restores them
/// (StartContainer). A dump that fails leaves the container running and no state behind.
/// </summary>
internal sealed class CheckpointContainer(EngineParts parts, FreezeContainer freezer, ContainerCheckpoint checkpoint)
{
    internal const string DirName = "checkpoint";

    /// <summary>Where a container's saved state is: criu's images, their logs and the NICs' addresses.</summary>
    public static string DirOf(EngineParts parts, string name) => Path.Combine(parts.Store.DirectoryOf(name), DirName);

    public static bool HasState(EngineParts parts, string name) => Directory.Exists(DirOf(parts, name));

    /// <summary>
    /// handOver (a live move's) runs with the images directory once criu has written it and still
    /// holds the tree frozen: returning lets criu end the tree, throwing has it thaw the tree, which
    /// runs on with its NICs, as after a failed dump.
    /// </summary>
    public async Task StopAsync(Container c, Action<string>? handOver = null)
    {
        string name = c.Name;
        var live = Checkpointable(c, "stopped with its state", "stop it again");
        string dir = DirOf(parts, name), staging = dir + ".new";
        string parent = parts.Store.DirectoryOf(name);
        TreeRemover.Remove(parent, DirName + ".new");
        Directory.CreateDirectory(staging);
        c.Stopping = true;
        try
        {
            // criu freezes the tree itself, through the freezer; one already frozen it would find stopped midway.
            if (live.Frozen) freezer.Thaw(live);
            StepTrace.Mark("stateful stop: dumping");
            checkpoint.Dump(live.Pid, staging, FreezerOf(live), onDumped: () =>
            {
                CheckpointCgroups.Save(live.Cgroup.Join.Unified, staging);
                handOver?.Invoke(staging);
            }, irmapScanPaths: WatchPaths(c));
            StepTrace.Mark("stateful stop: dumped");
            TreeRemover.Remove(parent, DirName);
            Directory.Move(staging, dir);
            // criu ended the tree; the supervisor releases its cgroup and NICs as after any exit.
            if (await Task.WhenAny(live.Exited.Task, Task.Delay(TimeSpan.FromSeconds(30))) != live.Exited.Task)
                throw new EngineException(FailureKind.Failed, "StopFailed", $"container '{name}' was dumped but its init did not exit");
        }
        catch
        {
            TreeRemover.Remove(parent, DirName + ".new");
            throw;
        }
        finally
        {
            c.Stopping = false;
        }
    }

    /// <summary>
    /// Saves a running container's processes into imagesDir and lets them run on (a stateful
    /// snapshot): whileFrozen runs once criu has written the images and the tree is still frozen,
    /// so what it takes of the file system agrees with the memory saved.
    /// </summary>
    public void SaveRunning(Container c, string imagesDir, Action whileFrozen)
    {
        var live = Checkpointable(c, "snapshotted with its state", "take the snapshot again");
        bool frozen = live.Frozen;
        if (frozen) freezer.Thaw(live);
        try
        {
            StepTrace.Mark("stateful snapshot: dumping");
            checkpoint.Dump(live.Pid, imagesDir, FreezerOf(live), leaveRunning: true, onDumped: () =>
            {
                CheckpointCgroups.Save(live.Cgroup.Join.Unified, imagesDir);
                whileFrozen();
            }, irmapScanPaths: WatchPaths(c));
            StepTrace.Mark("stateful snapshot: dumped");
        }
        finally
        {
            if (frozen) freezer.Freeze(c);
        }
    }

    /// <summary>What StopAsync refuses (not running, not stateful, commands exec'd into it), checked ahead of it.</summary>
    public static void CheckStoppable(Container c) => Checkpointable(c, "stopped with its state", "stop it again");

    /// <summary>
    /// Makes images (a stateful snapshot's) the stopped container's saved state, which its next
    /// start restores; copied, so the snapshot keeps its own.
    /// </summary>
    public static void Stage(EngineParts parts, string name, string images)
    {
        string parent = parts.Store.DirectoryOf(name);
        TreeRemover.Remove(parent, DirName + ".new");
        try
        {
            TreeCopy.Copy(images, DirOf(parts, name) + ".new");
            TreeRemover.Remove(parent, DirName);
            Directory.Move(DirOf(parts, name) + ".new", DirOf(parts, name));
        }
        catch
        {
            TreeRemover.Remove(parent, DirName + ".new");
            throw;
        }
    }

    /// <summary>The running container's init, refused unless criu can checkpoint its tree (what names the act, how to retry).</summary>
    private static LiveInit Checkpointable(Container c, string act, string retry)
    {
        var (state, live) = c.Snapshot();
        if (live is null || !state.CanStop()) throw c.NotRunning();
        if (!c.Spec.IsStateful)
            throw EngineException.Invalid("NotStateful",
                $"container '{c.Name}' cannot be {act}: it was created without {Spec.ContainerConfig.Stateful}=true, " +
                "which gives it the one user namespace and the console criu needs");
        if (ExecCommands(live) is { Count: > 0 } running)
            throw EngineException.Conflict("ExecRunning",
                $"container '{c.Name}' runs commands started by Invoke-SystemContainerCommand or Enter-SystemContainer, which criu cannot " +
                $"checkpoint (they are not below its init): {string.Join(", ", running)}; wait for them to end or end them, then {retry}");
        return live;
    }

    /// <summary>
    /// Where criu finds the files of the tree's inotify watches when it cannot open them by handle:
    /// on an overlayfs root (without nfs_export) it cannot, so it searches these directories, where
    /// systemd, dbus and PID 1 (the /etc/localtime target) watch. A root that is one volume (dir,
    /// btrfs) needs none.
    /// </summary>
    private IReadOnlyList<string> WatchPaths(Container c) =>
        parts.Storage.DirectRootOf(c.Record) is null ? ["/etc", "/usr/lib/systemd", "/usr/share/dbus-1", "/usr/share/zoneinfo", "/run"] : [];

    /// <summary>Discards a stopped container's saved state (Start-SystemContainer -Stateless).</summary>
    public static void Discard(EngineParts parts, string name) => TreeRemover.Remove(parts.Store.DirectoryOf(name), DirName);

    /// <summary>The freezer criu freezes the tree through: v1's freezer hierarchy, or the cgroup2 directory, frozen by the cgroup driver.</summary>
    private CheckpointFreezer? FreezerOf(LiveInit live) =>
        (live.Cgroup.Directories.FirstOrDefault(d => File.Exists(Path.Combine(d, "freezer.state")))
            ?? live.Cgroup.Directories.FirstOrDefault(d => File.Exists(Path.Combine(d, "cgroup.freeze")))) is string dir
            ? new CheckpointFreezer(dir, frozen => parts.Cgroups.SetFrozen(live.Cgroup, frozen))
            : null;

    /// <summary>
    /// The container's processes that are not below its init, as "pid N (command)" with the pid the
    /// container sees: commands exec'd into it, children of sc-init exec outside its tree.
    /// </summary>
    private static List<string> ExecCommands(LiveInit live)
    {
        var found = new List<string>();
        string? dir = live.Cgroup.Directories.FirstOrDefault(Directory.Exists);
        if (dir is null) return found;
        var pids = Directory.EnumerateFiles(dir, "cgroup.procs", SearchOption.AllDirectories)
            .SelectMany(f => File.ReadLines(f)).Select(l => int.TryParse(l, out int p) ? p : 0).Where(p => p > 0).Distinct();
        foreach (int pid in pids)
        {
            if (pid == live.Pid || BelowInit(pid, live.Pid)) continue;
            var nspid = ProcStatus(pid, "NSpid:");
            // sc-init exec itself is the host's (one pid); the commands it started have the container's too.
            if (nspid is not { Length: > 1 }) continue;
            string command = ReadOrEmpty($"/proc/{pid}/comm").Trim();
            found.Add($"pid {nspid[^1]} ({command})");
        }
        return found;
    }

    private static bool BelowInit(int pid, int init)
    {
        for (int at = pid, hops = 0; at > 1 && hops < 4096; hops++)
        {
            if (ProcStatus(at, "PPid:") is not [var ppid] || !int.TryParse(ppid, out at)) return false;
            if (at == init) return true;
        }
        return false;
    }

    private static string[]? ProcStatus(int pid, string field)
    {
        string? line = ReadOrEmpty($"/proc/{pid}/status").Split('\n').FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line?[field.Length..].Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
    }

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
    }
}
