using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// On a systemd host, container cgroups live in a transient scope of their own, &lt;group&gt;.scope in
/// systemcontainers.slice, with Delegate=yes (as systemd-nspawn, podman and runc place theirs), and
/// never below the daemon's own unit: systemd up to v253 cannot start a delegated service again while
/// its cgroup has live sub-cgroups with controllers enabled (systemd#24064), so restarting the daemon
/// with containers running would fail, and a daemon started from a login shell would have only its
/// session scope, which holds the shell. The daemon itself may then run anywhere.
/// A scope lives while it holds a process: containers hold it across daemon restarts, and a keeper
/// (sleep, in &lt;scope&gt;/.keeper, a name no container can have) holds it while the daemon runs.
/// </summary>
public sealed class SystemdScopeSubtree(string root, string group) : CgroupSubtree
{
    public const string Slice = "systemcontainers.slice";
    private const string KeeperDir = ".keeper";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly object _lock = new();
    private readonly string _expected = System.IO.Path.Join(root, Slice, group + ".scope");
    private string? _path;
    private SafeFd? _keeper;
    private bool _keeperIsChild;

    public string Unit => group + ".scope";

    public override string Path => _path ?? _expected;

    /// <summary>The pid of the process that holds the scope, or 0 before <see cref="Ensure"/>.</summary>
    public int KeeperPid { get; private set; }

    public override void Ensure()
    {
        lock (_lock)
        {
            if (_path is not null && _keeper is not null && Directory.Exists(_path) && KeeperAlive()) return;
            DropKeeper(kill: false);
            if (!AdoptScope()) StartScope();
            CgroupFs.EnableControllers(_path!);
        }
    }

    public override void Release()
    {
        lock (_lock) DropKeeper(kill: true);
    }

    /// <summary>A scope left by an earlier daemon (its containers still run): keep its keeper or put a new one in.</summary>
    private bool AdoptScope()
    {
        if (!Directory.Exists(_expected)) return false;
        string keeperDir = System.IO.Path.Combine(_expected, KeeperDir);
        foreach (var line in File.Exists(System.IO.Path.Combine(keeperDir, "cgroup.procs")) ? File.ReadAllLines(System.IO.Path.Combine(keeperDir, "cgroup.procs")) : [])
        {
            if (!int.TryParse(line, out int pid)) continue;
            try
            {
                Hold(pid, Sys.PidfdOpen(pid), child: false);
                _path = _expected;
                return true;
            }
            catch (NativeException e) when (e.Errno == Libc.ESRCH)
            {
            }
        }
        int keeper = Spawn([SleepPath, "infinity"], out var stderr);
        stderr.Dispose();
        Hold(keeper, Sys.PidfdOpen(keeper), child: true);
        try
        {
            CgroupFs.MakeDir(keeperDir);
            CgroupFs.Write(System.IO.Path.Combine(keeperDir, "cgroup.procs"), keeper.ToString());
        }
        catch (Exception e) when (e is NativeException or EngineException)
        {
            // The scope emptied and went away meanwhile: start a new one.
            DropKeeper(kill: true);
            return false;
        }
        _path = _expected;
        return true;
    }

    /// <summary>systemd-run --scope makes the scope, moves itself in, then execs the keeper.</summary>
    private void StartScope()
    {
        int pid = Spawn([SystemdRunPath, "--scope", "--quiet", "--collect", $"--unit={Unit}", $"--slice={Slice}",
            "--property=Delegate=yes", "--property=TasksMax=infinity",
            $"--description=SystemContainers containers ({group})", "--", SleepPath, "infinity"], out var stderr);
        using (stderr)
        {
            Hold(pid, Sys.PidfdOpen(pid), child: true);
            var deadline = DateTime.UtcNow + StartTimeout;
            for (;;)
            {
                if (Sys.ReapPidfd(_keeper!) is ExitStatus status)
                {
                    DropKeeper(kill: false);
                    throw new EngineException(FailureKind.Failed, "CgroupFailed",
                        $"cannot create the cgroup scope {Unit} in {Slice}: systemd-run exited with {status.Code?.ToString() ?? "signal " + status.Signal}: {Sys.ReadToEnd(stderr).Trim()}");
                }
                string? cgroup = UnifiedPathOf(pid);
                if (cgroup is not null && cgroup.EndsWith("/" + Unit, StringComparison.Ordinal) && IsSleep(pid))
                {
                    _path = System.IO.Path.Join(root, cgroup);
                    break;
                }
                if (DateTime.UtcNow > deadline)
                {
                    DropKeeper(kill: true);
                    throw new EngineException(FailureKind.Failed, "CgroupTimeout", $"timed out after {StartTimeout.TotalSeconds} s waiting for systemd to make the cgroup scope {Unit}");
                }
                Thread.Sleep(5);
            }
        }
        // Only a leaf may hold processes once controllers are enabled for the containers.
        string keeperDir = System.IO.Path.Combine(_path, KeeperDir);
        try
        {
            CgroupFs.MakeDir(keeperDir);
            CgroupFs.Write(System.IO.Path.Combine(keeperDir, "cgroup.procs"), pid.ToString());
        }
        catch
        {
            DropKeeper(kill: true);
            _path = null;
            throw;
        }
    }

    private void Hold(int pid, SafeFd pidfd, bool child)
    {
        _keeper = pidfd;
        _keeperIsChild = child;
        KeeperPid = pid;
    }

    private bool KeeperAlive()
    {
        try
        {
            return Sys.PidfdSignal(_keeper!, 0) && Sys.ReapPidfd(_keeper!) is null;
        }
        catch (NativeException)
        {
            return false;
        }
    }

    private void DropKeeper(bool kill)
    {
        if (_keeper is null) return;
        // A keeper adopted from an earlier daemon is not our child: its parent reaps it.
        if (kill && Sys.PidfdSignal(_keeper, 9) && _keeperIsChild)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
            while (Sys.ReapPidfd(_keeper) is null && DateTime.UtcNow < deadline) Thread.Sleep(2);
        }
        else if (_keeperIsChild) Sys.ReapPidfd(_keeper);
        _keeper.Dispose();
        _keeper = null;
        KeeperPid = 0;
    }

    private static int Spawn(IReadOnlyList<string> argv, out SafeFd stderr)
    {
        var (read, write) = Sys.Pipe();
        using (write)
        using (var devnull = Sys.Open("/dev/null", Libc.O_RDWR))
        {
            try
            {
                int pid = Sys.Spawn(argv[0], argv, [(devnull, 0), (devnull, 1), (write, 2)]);
                stderr = read;
                return pid;
            }
            catch
            {
                read.Dispose();
                throw;
            }
        }
    }

    private static string? UnifiedPathOf(int pid)
    {
        try
        {
            return CgroupFs.ProcCgroups(pid).Where(c => c.Controllers == "").Select(c => c.Path).FirstOrDefault();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool IsSleep(int pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/exe").LinkTarget is string exe && System.IO.Path.GetFileName(exe) == "sleep";
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string SleepPath => File.Exists("/usr/bin/sleep") ? "/usr/bin/sleep" : "/bin/sleep";

    private static string SystemdRunPath => File.Exists("/usr/bin/systemd-run") ? "/usr/bin/systemd-run" : "/bin/systemd-run";

    /// <summary>Whether systemd manages this host's cgroups (it is PID 1: sd_booted's test) and systemd-run is there.</summary>
    public static bool Available => Directory.Exists("/run/systemd/system") && File.Exists(SystemdRunPath);
}
