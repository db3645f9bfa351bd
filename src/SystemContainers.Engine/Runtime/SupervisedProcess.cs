using System.Text;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// A helper daemon the engine starts and keeps running (dnsmasq, lxcfs): restarted after a pause
/// when it dies, left running across the daemon's own restart and adopted by the next daemon by
/// pid, start time and command line, as containers are. A process it did not start is never signalled.
/// </summary>
public sealed class SupervisedProcess(string description, string path, string pidFile, EventLoop loop) : IDisposable
{
    private static readonly TimeSpan RestartDelay = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private string[] _args = [];
    private Instance? _current;
    private bool _stopping;

    /// <summary>The reason id of the error when it exits at start.</summary>
    public string FailureReason { get; init; } = "HelperFailed";

    /// <summary>Where its stdout and stderr go (appended); /dev/null when null.</summary>
    public string? OutputFile { get; init; }

    /// <summary>Said after "restarting" in the log line of an unexpected exit (where to look).</summary>
    public string RestartHint { get; init; } = "";

    /// <summary>Runs before every start, under the supervisor's lock (clearing what a dead process left).</summary>
    public Action? BeforeSpawn { get; init; }

    /// <summary>Runs when the process exits unexpectedly, before the pause that precedes its restart.</summary>
    public Action? AfterUnexpectedExit { get; init; }

    /// <summary>Runs after every restart that followed an unexpected exit.</summary>
    public Action? AfterRestart { get; init; }

    public string PidFile { get; } = pidFile;
    public int? Pid => _current?.Pid;

    /// <summary>
    /// Adopts the recorded process when it runs this command line, else starts one. A started
    /// process that exits within startupCheck is not restarted and this throws.
    /// </summary>
    public void Start(IReadOnlyList<string> args, TimeSpan startupCheck, Func<string> whyExited)
    {
        lock (_lock)
        {
            _stopping = false;
            _args = [.. args];
            if (TryAdopt()) return;
            var instance = Spawn();
            if (instance.Exited.Wait(startupCheck))
            {
                _stopping = true;
                _current = null;
                throw new EngineException(FailureKind.Failed, FailureReason, $"{description} exited at start: {whyExited()}");
            }
        }
    }

    /// <summary>The last line a helper wrote to its log, for the error that says why it quit.</summary>
    public static string LastLine(string logFile)
    {
        try { return File.ReadLines(logFile).LastOrDefault(l => l.Length > 0) ?? "no log"; }
        catch (IOException e) { return e.Message; }
    }

    /// <summary>The live process the pid file names (pid and start time both match), adopted or not.</summary>
    public int? RecordedPid()
    {
        if (!File.Exists(PidFile)) return null;
        var f = File.ReadAllText(PidFile).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 2 || !int.TryParse(f[0], out int pid) || !ulong.TryParse(f[1], out ulong start)) return null;
        return ProcStat.StartTime(pid) == start ? pid : null;
    }

    /// <summary>
    /// Adopts the recorded process if its command line is the one wanted; one started with another
    /// (an older daemon's, or an older config's) is ended: it is ours, and holds the ports or the mount.
    /// </summary>
    private bool TryAdopt()
    {
        if (RecordedPid() is not int pid) return false;
        SafeFd pidfd;
        try { pidfd = Sys.PidfdOpen(pid); }
        catch (NativeException) { return false; }
        var instance = new Instance(pid, pidfd);
        Watch(instance);
        if (SameCommandLine(pid)) return true;
        EngineLog.Write($"ending {description} {pid}, started with another command line");
        _current = null;
        End(instance);
        return false;
    }

    private bool SameCommandLine(int pid)
    {
        try
        {
            // A zombie's command line is empty: it is not adopted.
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
            return cmdline.Length > 0 && cmdline.AsSpan(1).SequenceEqual(_args.AsSpan(1));
        }
        catch (IOException)
        {
            return false;
        }
    }

    private Instance Spawn()
    {
        BeforeSpawn?.Invoke();
        int pid;
        using (var devnull = Sys.Open("/dev/null", Libc.O_RDWR))
        using (var output = OutputFile is null ? null : Sys.Open(OutputFile, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_APPEND, 0x180))
            pid = Sys.Spawn(path, _args, [(devnull, 0), (output ?? devnull, 1), (output ?? devnull, 2)]);
        var instance = new Instance(pid, Sys.PidfdOpen(pid));
        Watch(instance);
        Sys.WriteFileAtomic(PidFile, Encoding.ASCII.GetBytes($"{pid} {ProcStat.StartTime(pid)}\n"), durable: false);
        return instance;
    }

    private void Watch(Instance instance)
    {
        _current = instance;
        loop.WatchExit(instance.Pidfd, status => OnExit(instance, status));
    }

    /// <summary>An unexpected exit (a crash, a kill by hand) is logged and the process started again after a pause.</summary>
    private void OnExit(Instance instance, ExitStatus? status)
    {
        instance.Gone();
        lock (_lock)
        {
            if (_current != instance || _stopping) return;
            _current = null;
            EngineLog.Write($"{description} exited (code {status?.Code}, signal {status?.Signal}); restarting{RestartHint}");
        }
        AfterUnexpectedExit?.Invoke();
        Task.Delay(RestartDelay).ContinueWith(_ =>
        {
            lock (_lock)
            {
                if (_stopping || _current is not null) return;
                try { Spawn(); }
                catch (Exception e)
                {
                    EngineLog.Write($"cannot restart {description}: {e.Message}");
                    return;
                }
            }
            AfterRestart?.Invoke();
        }, TaskScheduler.Default);
    }

    /// <summary>Ends the process (SIGTERM, then SIGKILL) and waits until it has exited.</summary>
    public void Stop()
    {
        var instance = LetGo();
        File.Delete(PidFile);
        if (instance is not null) End(instance);
    }

    /// <summary>SIGTERM, then SIGKILL; returns once the process has exited.</summary>
    private static void End(Instance instance)
    {
        instance.Signal(15);
        if (!instance.Exited.Wait(TimeSpan.FromSeconds(5)))
        {
            instance.Signal(9);
            instance.Exited.Wait(TimeSpan.FromSeconds(5));
        }
    }

    /// <summary>Daemon shutdown: the process keeps serving; the next daemon adopts it.</summary>
    public void Dispose() => LetGo()?.Gone();

    /// <summary>Ends supervision and hands over the current process, if any.</summary>
    private Instance? LetGo()
    {
        lock (_lock)
        {
            _stopping = true;
            var instance = _current;
            _current = null;
            return instance;
        }
    }

    /// <summary>One process: its pidfd is closed by the exit watcher, never while a signal is sent.</summary>
    private sealed class Instance(int pid, SafeFd pidfd)
    {
        private readonly Lock _lock = new();
        private bool _gone;

        public int Pid { get; } = pid;
        public SafeFd Pidfd { get; } = pidfd;
        public ManualResetEventSlim Exited { get; } = new();

        public void Signal(int signal)
        {
            lock (_lock)
                if (!_gone) Sys.PidfdSignal(Pidfd, signal);
        }

        public void Gone()
        {
            lock (_lock)
            {
                _gone = true;
                Pidfd.Dispose();
            }
            Exited.Set();
        }
    }
}
