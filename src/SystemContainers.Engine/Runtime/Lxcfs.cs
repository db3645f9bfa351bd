using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Runtime;

/// <summary>Where the containers' lxcfs views come from: the host's own lxcfs, the daemon's, or none and why.</summary>
public sealed record LxcfsState(string Source, string? Mount, int? Pid, string Detail);

/// <summary>
/// The lxcfs whose files sc-init binds over a container's /proc and /sys entries, so free, top,
/// uptime and nproc inside show the container's limits and uptime (as LXD does). A host lxcfs
/// mounted at /var/lib/lxcfs (Debian's lxcfs.service) is used as it is; otherwise the daemon runs
/// its own on a mount point in its run directory and supervises it: it survives daemon restarts
/// (the containers' binds hold its FUSE mount) and is restarted when it dies. A host without
/// lxcfs starts containers with the kernel's own files.
/// </summary>
public sealed class Lxcfs : IDisposable
{
    public const string SystemMount = "/var/lib/lxcfs";
    private static readonly TimeSpan StartupCheck = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MountWait = TimeSpan.FromSeconds(10);

    /// <summary>The files lxcfs can provide, relative both to its mount and to the container's root.</summary>
    public static readonly IReadOnlyList<string> Files =
    [
        "proc/cpuinfo", "proc/diskstats", "proc/loadavg", "proc/meminfo", "proc/stat", "proc/swaps", "proc/uptime",
        "proc/slabinfo", "sys/devices/system/cpu/online",
    ];

    private readonly string _path;
    private readonly string _dir;
    private readonly EventLoop _loop;
    private SupervisedProcess? _process;
    private string? _failure;
    private long _diedAt;
    private Cgroup2Options? _cgroup2;

    public Lxcfs(string path, string runDir, EventLoop loop)
    {
        _path = path;
        _dir = Path.Combine(runDir, "lxcfs");
        MountPoint = Path.Combine(_dir, "mnt");
        LogFile = Path.Combine(_dir, "lxcfs.log");
        _loop = loop;
    }

    /// <summary>Where the daemon's own lxcfs is mounted.</summary>
    public string MountPoint { get; }
    public string LogFile { get; }

    /// <summary>The daemon's lxcfs command line: its own pid file (lxcfs locks it), so it never meets another instance's.</summary>
    private string[] Arguments => ["lxcfs", "--foreground", $"--pidfile={Path.Combine(_dir, "lxcfs.lock")}", MountPoint];

    /// <summary>The mount the containers' views come from, when one serves in this read of mountinfo.</summary>
    private string? ServingRoot(IEnumerable<string> mountinfo)
    {
        // One read of mountinfo for both mounts and the cgroup2 options: this runs on every container start.
        var mounts = LxcfsMounts(mountinfo);
        if (mounts.Contains(SystemMount)) return SystemMount;
        return _process is not null && mounts.Contains(MountPoint) && Answers(MountPoint) ? MountPoint : null;
    }

    /// <summary>Uses the host's lxcfs, adopts the daemon's from before a restart, or starts one; never throws.</summary>
    public void Start()
    {
        _cgroup2 = Cgroup2Options.Read();
        if (IsLxcfsMount(SystemMount)) return;
        if (!File.Exists(_path)) return;
        try
        {
            // A daemon's lxcfs killed while no daemon ran leaves its mount dead (ENOTCONN), and
            // mkdir on it fails; a live one belongs to the lxcfs adopted below.
            if (!IsLive(MountPoint)) DetachStaleMount();
            Directory.CreateDirectory(MountPoint);
        }
        catch (Exception e) when (e is NativeException or IOException)
        {
            _failure = $"cannot prepare the lxcfs mount point {MountPoint}: {e.Message}";
            EngineLog.Write($"containers start without lxcfs: {_failure}");
            return;
        }
        _process = new SupervisedProcess("lxcfs", _path, Path.Combine(_dir, "lxcfs.pid"), _loop)
        {
            FailureReason = "LxcfsFailed",
            OutputFile = LogFile,
            RestartHint = $"; see {LogFile}",
            BeforeSpawn = DetachStaleMount,
            AfterUnexpectedExit = () => Volatile.Write(ref _diedAt, Environment.TickCount64),
            AfterRestart = () =>
            {
                WaitForMount(null);
                KeepCgroup2(Cgroup2Options.Read(), "the daemon's restarted lxcfs");
                Volatile.Write(ref _diedAt, 0);
            },
        };
        try
        {
            _process.Start(Arguments, StartupCheck, () => SupervisedProcess.LastLine(LogFile));
            WaitForMount(_process);
            KeepCgroup2(Cgroup2Options.Read(), "the daemon's lxcfs");
        }
        catch (Exception e) when (e is EngineException or NativeException or IOException)
        {
            _failure = e.Message;
            _process.Stop();
            _process = null;
            EngineLog.Write($"containers start without lxcfs: {e.Message}");
        }
    }

    public LxcfsState State
    {
        get
        {
            if (IsLxcfsMount(SystemMount)) return new("system", SystemMount, null, $"the host's lxcfs at {SystemMount}");
            if (_process is { } p)
                return IsLive(MountPoint)
                    ? new("daemon", MountPoint, p.Pid, $"the daemon's lxcfs (pid {p.Pid}) at {MountPoint}")
                    : new("failed", null, p.Pid, $"the daemon's lxcfs is not mounted at {MountPoint} (restarting?); see {LogFile}");
            if (_failure is not null) return new("failed", null, null, _failure);
            return new("missing", null, null, $"{_path} is not installed; containers see the host's memory, CPUs and uptime");
        }
    }

    /// <summary>
    /// The serving mount and the files it provides (a dead FUSE mount provides none); null when none
    /// serves. A container started while lxcfs restarts waits for it (at most MountWait), rather than
    /// running without views for its whole life.
    /// </summary>
    public (string Root, IReadOnlyList<string> Files)? Views()
    {
        long deadline = Environment.TickCount64 + (long)MountWait.TotalMilliseconds;
        var mountinfo = File.ReadAllLines(Mountinfo);
        KeepCgroup2(Cgroup2Options.Parse(mountinfo), "a cgroup2 mount since the daemon started (lxcfs.service restarting?)");
        while (true)
        {
            if (ServingRoot(mountinfo) is { } root)
            {
                var files = Files.Where(f => File.Exists(Path.Combine(root, f))).ToList();
                if (files.Count > 0) return (root, files);
            }
            if (!Restarting || Environment.TickCount64 > deadline) return null;
            Thread.Sleep(10);
            mountinfo = File.ReadAllLines(Mountinfo);
        }
    }

    /// <summary>Puts back the cgroup2 options the daemon found that now lacks, and says so in the daemon's log.</summary>
    private void KeepCgroup2(Cgroup2Options? now, string cause)
    {
        if (Cgroup2Options.Restore(_cgroup2, now, cause) is not (bool remounted, string message)) return;
        EngineLog.Write(message);
        // A remount that failed is not tried again on every container start; the host check keeps saying it.
        if (!remounted) _cgroup2 = now;
    }

    /// <summary>Whether path is the root of a live lxcfs mount (fuse.lxcfs in this mount namespace).</summary>
    public static bool IsLxcfsMount(string path) => LxcfsMounts(File.ReadLines(Mountinfo)).Contains(path);

    private const string Mountinfo = "/proc/self/mountinfo";

    /// <summary>Where fuse.lxcfs is mounted in this mount namespace, from one read of mountinfo.</summary>
    private static HashSet<string> LxcfsMounts(IEnumerable<string> mountinfo)
    {
        var mounts = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in mountinfo)
        {
            // Fields: id parent major:minor root mountpoint options [optional...] - fstype source super-options
            var f = line.Split(' ');
            int dash = Array.IndexOf(f, "-");
            if (f.Length > 4 && dash > 0 && dash + 1 < f.Length && f[dash + 1] == "fuse.lxcfs") mounts.Add(f[4].Contains('\\') ? Unescape(f[4]) : f[4]);
        }
        return mounts;
    }

    /// <summary>Whether path is an lxcfs mount whose process answers: a killed one's mount stays listed but fails with ENOTCONN.</summary>
    private static bool IsLive(string path) => IsLxcfsMount(path) && Answers(path);

    /// <summary>Whether the lxcfs mounted at path answers a read.</summary>
    private static bool Answers(string path)
    {
        // A read, not a stat: the kernel answers stat from its attribute cache for a second after
        // lxcfs dies, while every open already fails.
        try
        {
            using var uptime = new FileStream(Path.Combine(path, "proc/uptime"), FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            return uptime.Read(new byte[64]) > 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    /// <summary>
    /// The daemon's lxcfs died and its supervisor is bringing it back (a pause, then a mount): the exit
    /// was seen within MountWait, or its mount is already dead and the exit is about to be seen.
    /// </summary>
    private bool Restarting =>
        _process is not null &&
        (Volatile.Read(ref _diedAt) is long t && t != 0 && Environment.TickCount64 - t < MountWait.TotalMilliseconds
         || IsLxcfsMount(MountPoint) && !Answers(MountPoint));

    /// <summary>mountinfo writes space, tab, newline and backslash in paths as octal escapes.</summary>
    private static string Unescape(string field) =>
        System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());

    /// <summary>A killed lxcfs leaves its FUSE mount behind, answering ENOTCONN; a new one mounts only on a clean point.</summary>
    private void DetachStaleMount()
    {
        // Mounts stack when a new lxcfs mounted over a dead one; every layer goes.
        while (IsLxcfsMount(MountPoint))
            if (Libc.umount2(MountPoint, Libc.MNT_DETACH) < 0)
                throw NativeException.FromLastError("umount2", MountPoint);
    }

    /// <summary>lxcfs mounts a moment after it starts; containers started before that would get no views.</summary>
    private void WaitForMount(SupervisedProcess? starting)
    {
        var deadline = DateTime.UtcNow + MountWait;
        while (!IsLive(MountPoint))
        {
            if (DateTime.UtcNow > deadline)
            {
                string why = $"lxcfs did not mount {MountPoint} within {MountWait.TotalSeconds:0} s: {SupervisedProcess.LastLine(LogFile)}";
                if (starting is null) { EngineLog.Write(why); return; }
                throw new EngineException(FailureKind.Failed, "LxcfsFailed", why);
            }
            Thread.Sleep(10);
        }
    }

    /// <summary>Ends the daemon's own lxcfs (it unmounts itself on SIGTERM) and clears a mount it left; the host's is never touched.</summary>
    public void Stop()
    {
        if (_process is null) return;
        _process.Stop();
        _process = null;
        DetachStaleMount();
    }

    /// <summary>Daemon shutdown: lxcfs keeps serving the running containers; the next daemon adopts it.</summary>
    public void Dispose() => _process?.Dispose();
}
