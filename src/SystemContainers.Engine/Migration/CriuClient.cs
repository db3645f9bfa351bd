using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using SystemContainers.Engine.Interop;
using CriuOpts = SystemContainers.Engine.Migration.Rpc.criu_opts;
using CriuReq = SystemContainers.Engine.Migration.Rpc.criu_req;
using CriuReqType = SystemContainers.Engine.Migration.Rpc.criu_req_type;
using CriuResp = SystemContainers.Engine.Migration.Rpc.criu_resp;
using CriuNetworkLockMethod = SystemContainers.Engine.Migration.Rpc.criu_network_lock_method;

namespace SystemContainers.Engine.Migration;

/// <summary>
/// Drives criu through its RPC, as runc does: each request starts `criu swrk 3` with one end of a
/// SOCK_SEQPACKET socketpair as its fd 3, sends one criu_req and reads criu_resp packets until the
/// answer, answering every notify packet (a step of the dump or restore) after the caller's
/// callback ran. criu opens the images directory through /proc/(our pid)/fd, so the engine keeps
/// that fd; only the socket, stdio and the fds a restore inherits (from fd 4) reach criu.
/// </summary>
public sealed class CriuClient(string command)
{
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(60);
    private const int FirstInheritedFd = 4;
    private static readonly string[] Environment = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    private readonly Lock _lock = new();
    private CriuVersion? _usable;

    /// <summary>The command that runs criu: a packaged binary or the wrapper build.ps1 makes around a private tree.</summary>
    public string Command { get; } = command;

    public CriuVersion Version()
    {
        var resp = Call(new CriuReq { Type = CriuReqType.Version }, "version query", null, null, QueryTimeout);
        var v = resp.Version ?? throw Failed("version query", "criu answered without a version", null);
        return new CriuVersion(v.MajorNumber, v.MinorNumber, v.HasSublevel ? v.Sublevel : 0, v.HasGitid ? v.Gitid : null);
    }

    /// <summary>criu's own check of the kernel (what `criu check` prints as "Looks good").</summary>
    public void Check()
    {
        RequireUsable();
        Call(new CriuReq { Type = CriuReqType.Check }, "check", null, null, QueryTimeout);
    }

    public CriuFeatures Features()
    {
        RequireUsable();
        var req = new CriuReq { Type = CriuReqType.FeatureCheck, Features = new Rpc.criu_features { MemTrack = true, LazyPages = true, PidfdStore = true } };
        var f = Call(req, "feature check", null, null, QueryTimeout).Features
            ?? throw Failed("feature check", "criu answered without features", null);
        return new CriuFeatures(f.MemTrack, f.LazyPages, f.PidfdStore);
    }

    /// <summary>
    /// Dumps the process tree of options.Pid into options.ImagesDir; onNotify gets each step
    /// ("network-lock", "post-dump", ...) with the pid criu names, and a throw from it fails the dump.
    /// </summary>
    public void Dump(CriuDumpOptions options, Action<string, int>? onNotify = null)
    {
        RequireUsable();
        string what = $"dump of pid {options.Pid}";
        using var images = OpenImagesDir(options.ImagesDir, what);
        var opts = CommonOptions(images, "dump.log", onNotify is not null);
        opts.Pid = options.Pid;
        if (options.Root is not null) opts.Root = options.Root;
        opts.External.AddRange(options.External);
        opts.SkipMnt.AddRange(options.SkipMounts);
        SetMounts(opts, options.AutoExternalMounts);
        SetCgroups(opts, options.ManageCgroups);
        if (options.FreezeCgroup is not null) opts.FreezeCgroup = options.FreezeCgroup;
        opts.TcpEstablished = options.TcpEstablished;
        opts.ShellJob = options.ShellJob;
        opts.OrphanPtsMaster = options.OrphanPtsMaster;
        opts.LeaveRunning = options.LeaveRunning;
        opts.FileLocks = options.FileLocks;
        opts.ForceIrmap = options.IrmapScanPaths.Count > 0;
        opts.IrmapScanPaths.AddRange(options.IrmapScanPaths);
        Call(new CriuReq { Type = CriuReqType.Dump, Opts = opts }, what, Path.Combine(options.ImagesDir, "dump.log"), onNotify, options.Timeout);
    }

    /// <summary>
    /// Restores the tree dumped in options.ImagesDir; returns the host pid of its root. With
    /// OrphanPtsMaster, onPtsMaster owns the master criu made for the tree's terminal.
    /// </summary>
    public int Restore(CriuRestoreOptions options, Action<string, int>? onNotify = null, Action<SafeFd>? onPtsMaster = null)
    {
        RequireUsable();
        string what = $"restore from {options.ImagesDir}";
        using var images = OpenImagesDir(options.ImagesDir, what);
        var opts = CommonOptions(images, "restore.log", onNotify is not null);
        opts.Root = options.Root;
        opts.External.AddRange(options.External);
        SetMounts(opts, options.AutoExternalMounts);
        SetCgroups(opts, options.ManageCgroups);
        foreach (var (controller, path) in options.CgroupRoots)
            opts.CgRoot.Add(controller is null ? new Rpc.cgroup_root { Path = path } : new Rpc.cgroup_root { Ctrl = controller, Path = path });
        opts.TcpEstablished = options.TcpEstablished;
        opts.ShellJob = options.ShellJob;
        opts.OrphanPtsMaster = options.OrphanPtsMaster;
        opts.FileLocks = options.FileLocks;
        opts.RstSibling = options.Sibling;
        // Inherited fds are numbered in criu's process: they follow the socket, from fd 4.
        for (int i = 0; i < options.InheritFds.Count; i++)
            opts.InheritFd.Add(new Rpc.inherit_fd { Key = options.InheritFds[i].Key, Fd = FirstInheritedFd + i });
        string log = Path.Combine(options.ImagesDir, "restore.log");
        var resp = Call(new CriuReq { Type = CriuReqType.Restore, Opts = opts }, what, log, onNotify, options.Timeout,
            [.. options.InheritFds.Select(f => f.Fd)], onPtsMaster, options.NetworkNamespace);
        return resp.Restore?.Pid ?? throw Failed(what, "criu answered without the restored pid", log);
    }

    /// <summary>Asks the version once per client and refuses a missing or too old criu with what is needed.</summary>
    private void RequireUsable()
    {
        lock (_lock)
        {
            if (_usable is not null) return;
            var version = Version();
            if (!version.IsAtLeast(CriuVersion.Minimum))
                throw new EngineException(FailureKind.Failed, "CriuTooOld",
                    $"criu {version} ({Command}) is too old: checkpoints need criu >= {CriuVersion.Minimum} " +
                    "(build.ps1 installs one under /var/cache/systemcontainers/criu; give the daemon its path with --criu)");
            _usable = version;
        }
    }

    /// <summary>Mounts criu cannot resolve inside the tree (binds of the host's files) are external, keyed by their mount point.</summary>
    private static void SetMounts(CriuOpts opts, bool auto)
    {
        if (!auto) return;
        opts.AutoExtMnt = true;
        opts.ExtSharing = true;
        opts.ExtMasters = true;
    }

    /// <summary>SOFT: criu records the tree's cgroups and puts them back only where missing; the engine makes and limits the container's own.</summary>
    private static void SetCgroups(CriuOpts opts, bool manage)
    {
        if (!manage) return;
        opts.ManageCgroups = true;
        opts.ManageCgroupsMode = Rpc.criu_cg_mode.Soft;
    }

    private static SafeFd OpenImagesDir(string dir, string what)
    {
        try { return Sys.Open(dir, Libc.O_RDONLY | Libc.O_DIRECTORY); }
        catch (NativeException e) { throw new EngineException(FailureKind.Failed, "CriuFailed", $"criu {what} failed: {e.Message}", e); }
    }

    private static CriuOpts CommonOptions(SafeFd images, string logFile, bool notify) => new()
    {
        ImagesDirFd = images.Fd,
        LogFile = logFile,
        // Errors and warnings: at 4 (debug) criu writes a line per step of every task, mapping and
        // fd while the tree is frozen, a quarter of a systemd container's dump and restore here
        // (research notes, section 1.6: 1.7 s against 1.3 s at 1).
        LogLevel = 2,
        NotifyScripts = notify,
        // Locks the container's TCP with the nft library inside criu: no iptables binary, no xtables lock.
        NetworkLock = CriuNetworkLockMethod.Nftables,
    };

    private CriuResp Call(CriuReq req, string what, string? log, Action<string, int>? onNotify, TimeSpan timeout, IReadOnlyList<SafeFd>? inherited = null,
        Action<SafeFd>? onPtsMaster = null, SafeFd? netns = null)
    {
        if (Command.Contains('/') && !File.Exists(Command))
            throw new EngineException(FailureKind.Failed, "CriuMissing",
                $"criu {what} failed: {Command} does not exist; checkpoints and migration need criu >= {CriuVersion.Minimum} " +
                "(build.ps1 installs one under /var/cache/systemcontainers/criu; give the daemon its path with --criu)");
        var (ours, theirs) = Sys.SeqPacketPair();
        using (ours)
        {
            var (errRead, errWrite) = Sys.Pipe();
            using (errRead)
            {
                int pid;
                using (theirs)
                using (errWrite)
                using (var devnull = Sys.Open("/dev/null", Libc.O_RDWR))
                {
                    var fds = new List<(SafeFd, int)> { (devnull, 0), (devnull, 1), (errWrite, 2), (theirs, 3) };
                    for (int i = 0; i < (inherited?.Count ?? 0); i++) fds.Add((inherited![i], FirstInheritedFd + i));
                    int Spawn() => Sys.Spawn(Command, [Command, "swrk", "3"], fds, Environment);
                    // A child takes the network namespace of the thread that spawns it.
                    try { pid = netns is null ? Spawn() : Network.NetworkNamespaceThread.Run(netns, Spawn); }
                    catch (NativeException e) { throw Failed(what, $"cannot start {Command}: {e.Message}", null); }
                }
                using var pidfd = Sys.PidfdOpen(pid);
                CriuResp? resp;
                Exception? notifyError = null;
                try
                {
                    resp = Exchange(ours, req, onNotify, onPtsMaster, timeout, ref notifyError);
                }
                catch (TimeoutException)
                {
                    Sys.PidfdSignal(pidfd, 9);
                    Sys.WaitPid(pid);
                    throw Failed(what, $"criu did not answer within {timeout.TotalSeconds:0} s and was killed", log);
                }
                catch
                {
                    Sys.PidfdSignal(pidfd, 9);
                    Sys.WaitPid(pid);
                    throw;
                }
                ours.Dispose();
                int status = Sys.WaitPid(pid);
                string stderr = ReadAvailable(errRead);
                if (resp is null)
                    throw Failed(what, $"criu exited with status {status} before it answered{(stderr.Length > 0 ? ": " + stderr : "")}", log);
                if (notifyError is not null)
                    throw new EngineException(FailureKind.Failed, "CriuFailed", $"criu {what} failed: {notifyError.Message}{LogHint(log)}", notifyError);
                if (!resp.Success)
                {
                    string why = resp.HasCrErrmsg && resp.CrErrmsg.Trim().Length > 0 ? resp.CrErrmsg.Trim()
                        : resp.HasCrErrno && resp.CrErrno != 0 ? NativeException.ErrnoName(resp.CrErrno) : "criu reported failure";
                    // criu's answer carries its first error, which can be the one it goes on from; the log's says more.
                    throw Failed(what, log is not null && FirstError(log) is not null ? null : why, log);
                }
                return resp;
            }
        }
    }

    /// <summary>Sends the request and reads packets until the answer; null when criu closed the socket first.</summary>
    private static CriuResp? Exchange(SafeFd socket, CriuReq req, Action<string, int>? onNotify, Action<SafeFd>? onPtsMaster, TimeSpan timeout,
        ref Exception? notifyError)
    {
        Sys.SendPacket(socket, req.ToByteArray());
        for (;;)
        {
            if (Sys.ReceivePacket(socket, timeout) is not var (packet, fd)) return null;
            var resp = CriuResp.Parser.ParseFrom(packet);
            // Only the orphan-pts-master step carries a descriptor: the master of the tree's terminal.
            if (fd is not null && (resp.Notify?.Script != "orphan-pts-master" || onPtsMaster is null)) fd.Dispose();
            else if (fd is not null) onPtsMaster!(fd);
            if (resp.Type != CriuReqType.Notify) return resp;
            bool ok = true;
            if (notifyError is null && onNotify is not null && resp.Notify is { } n)
            {
                try { onNotify(n.Script, n.HasPid ? n.Pid : 0); }
                catch (Exception e)
                {
                    // criu aborts the dump or restore on notify_success=false and answers with its failure.
                    notifyError = e;
                    ok = false;
                }
            }
            Sys.SendPacket(socket, new CriuReq { Type = CriuReqType.Notify, NotifySuccess = ok }.ToByteArray());
        }
    }

    /// <summary>The error says why, names the log and quotes the first error criu wrote there.</summary>
    private static EngineException Failed(string what, string? why, string? log)
    {
        var parts = new List<string>();
        if (why is not null) parts.Add(why);
        if (log is not null) parts.Add(FirstError(log) is string cause ? $"see {log}: {cause}" : $"see {log}");
        return new(FailureKind.Failed, "CriuFailed", $"criu {what} failed: {string.Join("; ", parts)}");
    }

    private static string LogHint(string? log) => log is null ? "" : $"; see {log}";

    /// <summary>
    /// criu's first "Error" line, but for the one it logs and goes on from where it may not raise its
    /// fd limit (no CAP_SYS_RESOURCE, as in sandboxes): that one is also what its answer names.
    /// </summary>
    private static string? FirstError(string log)
    {
        try
        {
            return File.ReadLines(log)
                .Select(l => l.IndexOf("Error (", StringComparison.Ordinal) is int i and >= 0 ? l[i..].Trim() : null)
                .FirstOrDefault(l => l is not null && !l.Contains("RLIMIT_NOFILE", StringComparison.Ordinal));
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>What criu wrote to stderr (the loader's complaints come there, before any log), without waiting on writers it left.</summary>
    private static unsafe string ReadAvailable(SafeFd pipe)
    {
        const int F_GETFL = 3, F_SETFL = 4;
        Libc.fcntl(pipe.Fd, F_SETFL, Libc.fcntl(pipe.Fd, F_GETFL, 0) | Libc.O_NONBLOCK);
        byte* buf = stackalloc byte[4096];
        nint n = Libc.read(pipe.Fd, buf, 4096);
        if (n <= 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (n < 0 && errno != Libc.EAGAIN && errno != Libc.EINTR) throw new NativeException(errno, "read criu's stderr from", pipe.Name);
            return "";
        }
        return Encoding.UTF8.GetString(buf, (int)n).Trim().ReplaceLineEndings(" ");
    }
}
