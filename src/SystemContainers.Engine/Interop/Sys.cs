using System.Runtime.InteropServices;
using System.Text;

namespace SystemContainers.Engine.Interop;

/// <summary>Thin wrappers over Libc that throw NativeException and return owned SafeFds.</summary>
public static unsafe class Sys
{
    public static SafeFd Open(string path, int flags, int mode = 0)
    {
        int fd = Libc.open(path, flags | Libc.O_CLOEXEC, mode);
        if (fd < 0) throw NativeException.FromLastError("open", path);
        return new SafeFd(fd, name: path);
    }

    public static (SafeFd A, SafeFd B) SocketPair()
    {
        const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0x80000;
        int* sv = stackalloc int[2];
        if (Libc.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
            throw NativeException.FromLastError("create socketpair");
        return (new SafeFd(sv[0]), new SafeFd(sv[1]));
    }

    /// <summary>A socketpair that keeps message boundaries (one message per packet), both ends close-on-exec.</summary>
    public static (SafeFd A, SafeFd B) SeqPacketPair()
    {
        const int AF_UNIX = 1, SOCK_SEQPACKET = 5, SOCK_CLOEXEC = 0x80000;
        int* sv = stackalloc int[2];
        if (Libc.socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
            throw NativeException.FromLastError("create seqpacket socketpair");
        return (new SafeFd(sv[0]), new SafeFd(sv[1]));
    }

    /// <summary>Sends one packet whole.</summary>
    public static void SendPacket(SafeFd socket, ReadOnlySpan<byte> data)
    {
        const int MSG_NOSIGNAL = 0x4000;
        fixed (byte* p = data)
            for (;;)
            {
                nint n = Libc.send(socket.Fd, p, data.Length, MSG_NOSIGNAL);
                if (n >= 0) return;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Libc.EINTR) throw new NativeException(errno, "send to", socket.Name);
            }
    }

    /// <summary>
    /// Receives one whole packet, sized first with MSG_PEEK|MSG_TRUNC, with the descriptor it carried
    /// (SCM_RIGHTS) if any; null when the peer closed its end. Throws TimeoutException when nothing
    /// came within the timeout.
    /// </summary>
    public static (byte[] Data, SafeFd? Fd)? ReceivePacket(SafeFd socket, TimeSpan timeout)
    {
        const int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_CMSG_CLOEXEC = 0x40000000;
        const short POLLIN = 1;
        const int MSG_PEEK = 2, MSG_TRUNC = 0x20;
        byte* control = stackalloc byte[64];
        var deadline = DateTime.UtcNow + timeout;
        for (;;)
        {
            var pfd = new Libc.PollFd { Fd = socket.Fd, Events = POLLIN };
            int left = (int)Math.Max(0, Math.Ceiling((deadline - DateTime.UtcNow).TotalMilliseconds));
            int ready = Libc.poll(&pfd, 1, left);
            if (ready < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                throw new NativeException(errno, "poll", socket.Name);
            }
            if (ready == 0) throw new TimeoutException($"nothing came on {socket.Name} within {timeout.TotalSeconds:0} s");
            byte probe;
            nint size = Libc.recv(socket.Fd, &probe, 1, MSG_PEEK | MSG_TRUNC);
            if (size < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                throw new NativeException(errno, "recv from", socket.Name);
            }
            if (size == 0) return null;
            var buffer = new byte[size];
            fixed (byte* p = buffer)
                for (;;)
                {
                    var iov = new Libc.IoVec { Base = p, Length = (nuint)size };
                    var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = 64 };
                    nint n = Libc.recvmsg(socket.Fd, &msg, MSG_CMSG_CLOEXEC);
                    if (n >= 0)
                    {
                        // struct cmsghdr: size_t len, int level, int type, then the data.
                        SafeFd? fd = msg.ControlLength >= 20 && *(int*)(control + 8) == SOL_SOCKET && *(int*)(control + 12) == SCM_RIGHTS
                            ? new SafeFd(*(int*)(control + 16)) : null;
                        return (n == size ? buffer : buffer[..(int)n], fd);
                    }
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != Libc.EINTR) throw new NativeException(errno, "recv from", socket.Name);
                }
        }
    }

    public static (SafeFd Read, SafeFd Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (Libc.pipe2(fds, Libc.O_CLOEXEC) < 0) throw NativeException.FromLastError("create pipe");
        return (new SafeFd(fds[0]), new SafeFd(fds[1]));
    }

    public static SafeFd PidfdOpen(int pid)
    {
        long fd = Libc.syscall(Libc.SYS_pidfd_open, pid, 0, 0, 0);
        if (fd < 0) throw NativeException.FromLastError("pidfd_open", $"pid {pid}");
        return new SafeFd((int)fd);
    }

    /// <summary>Signals through a pidfd, so a recycled pid can never be hit. False when the process is gone.</summary>
    public static bool PidfdSignal(SafeFd pidfd, int signal)
    {
        if (Libc.syscall(Libc.SYS_pidfd_send_signal, pidfd.Fd, signal, 0, 0) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.ESRCH) return false;
        throw new NativeException(errno, $"send signal {signal} to", $"pidfd {pidfd.Fd}");
    }

    public static void SetChildSubreaper()
    {
        if (Libc.prctl(Libc.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
            throw NativeException.FromLastError("set child subreaper");
    }

    /// <summary>
    /// Reaps the exited process behind a pidfd; null when it is not our child (adopted) or, without
    /// wait, not waitable yet. With wait it blocks until our child can be reaped: one that exited
    /// while traced (killed by criu at the end of a dump) is waitable only once its tracer lets go.
    /// </summary>
    public static ExitStatus? ReapPidfd(SafeFd pidfd, bool wait = false)
    {
        byte* info = stackalloc byte[128];
        new Span<byte>(info, 128).Clear();
        while (Libc.waitid(Libc.P_PIDFD, pidfd.Fd, info, Libc.WEXITED | (wait ? 0 : Libc.WNOHANG)) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EINTR) continue;
            if (errno == Libc.ECHILD) return null;
            throw new NativeException(errno, "waitid", $"pidfd {pidfd.Fd}");
        }
        // siginfo_t: si_signo, si_errno, si_code, then (after padding) si_pid, si_uid, si_status.
        int code = *(int*)(info + 8);
        int status = *(int*)(info + 24);
        int pid = *(int*)(info + 16);
        if (pid == 0) return null;
        return code == Libc.CLD_EXITED ? new ExitStatus(status, null) : new ExitStatus(null, status);
    }

    public static int WaitPid(int pid)
    {
        int status;
        while (Libc.waitpid(pid, &status, 0) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Libc.EINTR) throw new NativeException(errno, "waitpid", $"pid {pid}");
        }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
    }

    /// <summary>A pty pair: the master stays with the daemon, the slave is chowned to the container's root.</summary>
    public static (SafeFd Master, SafeFd Slave, string SlavePath) OpenPty(int ownerUid, int ownerGid)
    {
        int m = Libc.posix_openpt(Libc.O_RDWR | Libc.O_NOCTTY | Libc.O_CLOEXEC);
        if (m < 0) throw NativeException.FromLastError("open", "/dev/ptmx");
        var master = new SafeFd(m);
        try
        {
            if (Libc.grantpt(m) < 0) throw NativeException.FromLastError("grantpt", "/dev/ptmx");
            if (Libc.unlockpt(m) < 0) throw NativeException.FromLastError("unlockpt", "/dev/ptmx");
            byte* name = stackalloc byte[128];
            if (Libc.ptsname_r(m, name, 128) != 0) throw NativeException.FromLastError("ptsname", "/dev/ptmx");
            string path = Marshal.PtrToStringUTF8((nint)name)!;
            var slave = Open(path, Libc.O_RDWR | Libc.O_NOCTTY);
            if (Libc.fchown(slave.Fd, ownerUid, ownerGid) < 0)
            {
                slave.Dispose();
                throw NativeException.FromLastError("chown", path);
            }
            return (master, slave, path);
        }
        catch
        {
            master.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A slave of the pty whose master this is, opened through the master (TIOCGPTPEER), so a pty
    /// of a container's own devpts is reached without resolving a path of the container.
    /// </summary>
    public static SafeFd OpenPtyPeer(SafeFd master)
    {
        const ulong TIOCGPTPEER = 0x5441;
        int fd = Libc.ioctl(master.Fd, TIOCGPTPEER, (void*)(nint)(Libc.O_RDWR | Libc.O_NOCTTY | Libc.O_CLOEXEC));
        if (fd < 0) throw NativeException.FromLastError("open the slave of", $"pty master {master.Fd}");
        return new SafeFd(fd);
    }

    /// <summary>
    /// Attaches a detached mount (an open_tree clone) at path in this process's mount namespace,
    /// with nosuid and nodev cleared: a container's root as it runs, for a tool that takes a path.
    /// </summary>
    public static void AttachMount(SafeFd tree, string path)
    {
        const int AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000, MOVE_MOUNT_F_EMPTY_PATH = 4;
        const ulong MOUNT_ATTR_NOSUID = 0x02, MOUNT_ATTR_NODEV = 0x04;
        ulong* attr = stackalloc ulong[4];
        attr[0] = 0;
        attr[1] = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        attr[2] = 0;
        attr[3] = 0;
        byte empty = 0;
        if (Libc.syscall5(Libc.SYS_mount_setattr, tree.Fd, (long)&empty, AT_EMPTY_PATH, (long)attr, 32) < 0)
            throw NativeException.FromLastError("clear nosuid,nodev of the mount for", path);
        byte[] target = Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* t = target)
            if (Libc.syscall5(Libc.SYS_move_mount, tree.Fd, (long)&empty, AT_FDCWD, (long)t, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                throw NativeException.FromLastError("move_mount to", path);
    }

    /// <summary>Detaches the mount at path (MNT_DETACH); false when nothing was mounted there.</summary>
    public static bool DetachMount(string path)
    {
        const int MNT_DETACH = 2;
        if (Libc.umount2(path, MNT_DETACH) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno == Libc.EINVAL ? false : throw new NativeException(errno, "unmount", path);
    }

    /// <summary>
    /// Adds a neighbour entry (SIOCSARP, ATF_COM: complete, not permanent) so a datagram to an
    /// address that cannot answer ARP yet (a DHCP client being offered it) goes to its MAC.
    /// </summary>
    public static void SetArpEntry(nint socketFd, string device, System.Net.IPAddress address, ReadOnlySpan<byte> mac)
    {
        const ulong SIOCSARP = 0x8955;
        const ushort AfInet = 2, ArphrdEther = 1;
        const int AtfCom = 0x02;
        // struct arpreq: arp_pa (sockaddr_in), arp_ha (sockaddr), arp_flags, arp_netmask (sockaddr), arp_dev[16].
        byte* req = stackalloc byte[68];
        new Span<byte>(req, 68).Clear();
        *(ushort*)req = AfInet;
        address.GetAddressBytes().CopyTo(new Span<byte>(req + 4, 4));
        *(ushort*)(req + 16) = ArphrdEther;
        mac.CopyTo(new Span<byte>(req + 18, 14));
        *(int*)(req + 32) = AtfCom;
        var name = System.Text.Encoding.ASCII.GetBytes(device);
        if (name.Length > 15) throw new NativeException(Libc.EINVAL, "set the ARP entry of", $"{address} on {device}");
        name.CopyTo(new Span<byte>(req + 52, 16));
        if (Libc.ioctl((int)socketFd, SIOCSARP, req) < 0) throw NativeException.FromLastError("set the ARP entry of", $"{address} on {device}");
    }

    public static void SetWindowSize(SafeFd pty, ushort rows, ushort cols)
    {
        const ulong TIOCSWINSZ = 0x5414;
        ushort* ws = stackalloc ushort[4];
        ws[0] = rows;
        ws[1] = cols;
        ws[2] = 0;
        ws[3] = 0;
        if (Libc.ioctl(pty.Fd, TIOCSWINSZ, ws) < 0) throw NativeException.FromLastError("set window size of", $"pty {pty.Fd}");
    }

    /// <summary>
    /// posix_spawn with the given fds dup'ed to fixed numbers (which clears their CLOEXEC);
    /// everything else stays close-on-exec. Signals are reset in the child; its environment is only
    /// what environment names (none by default).
    /// </summary>
    public static int Spawn(string path, IReadOnlyList<string> argv, IReadOnlyList<(SafeFd Fd, int Target)> fds, IReadOnlyList<string>? environment = null)
    {
        environment ??= [];
        const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;
        byte* actions = stackalloc byte[256];
        byte* attr = stackalloc byte[512];
        byte* allSignals = stackalloc byte[128];
        byte* noSignals = stackalloc byte[128];
        new Span<byte>(allSignals, 128).Fill(0xff);
        new Span<byte>(noSignals, 128).Clear();
        Libc.posix_spawn_file_actions_init(actions);
        Libc.posix_spawnattr_init(attr);
        var strings = new List<nint>();
        try
        {
            foreach (var (fd, target) in fds)
                Libc.posix_spawn_file_actions_adddup2(actions, fd.Fd, target);
            Libc.posix_spawnattr_setsigdefault(attr, allSignals);
            Libc.posix_spawnattr_setsigmask(attr, noSignals);
            Libc.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
            nint Utf8(string s)
            {
                nint p = Marshal.StringToCoTaskMemUTF8(s);
                strings.Add(p);
                return p;
            }
            byte** args = stackalloc byte*[argv.Count + 1];
            for (int i = 0; i < argv.Count; i++) args[i] = (byte*)Utf8(argv[i]);
            args[argv.Count] = null;
            byte** env = stackalloc byte*[environment.Count + 1];
            for (int i = 0; i < environment.Count; i++) env[i] = (byte*)Utf8(environment[i]);
            env[environment.Count] = null;
            int pid;
            int rc = Libc.posix_spawn(&pid, (byte*)Utf8(path), actions, attr, args, env);
            if (rc != 0) throw new NativeException(rc, "spawn", path);
            return pid;
        }
        finally
        {
            foreach (var p in strings) Marshal.FreeCoTaskMem(p);
            Libc.posix_spawn_file_actions_destroy(actions);
            Libc.posix_spawnattr_destroy(attr);
            GC.KeepAlive(fds);
        }
    }

    /// <summary>Runs a tool to completion with the given stdin; returns its exit status and what it wrote to stderr.</summary>
    public static (int ExitCode, string Error) Run(string path, IReadOnlyList<string> argv, string stdin)
    {
        var (inRead, inWrite) = Pipe();
        var (errRead, errWrite) = Pipe();
        using (inWrite)
        using (errRead)
        {
            int pid;
            using (inRead)
            using (errWrite)
            using (var devnull = Open("/dev/null", Libc.O_WRONLY))
                pid = Spawn(path, argv, [(inRead, 0), (devnull, 1), (errWrite, 2)]);
            try
            {
                WriteAll(inWrite, Encoding.UTF8.GetBytes(stdin));
            }
            catch (NativeException)
            {
                // The tool quit before reading all of stdin; its status and stderr say why.
            }
            finally
            {
                inWrite.Dispose();
            }
            string error = ReadToEnd(errRead);
            return (WaitPid(pid), error.Trim());
        }
    }

    public static void WriteAll(SafeFd fd, ReadOnlySpan<byte> data)
    {
        fixed (byte* p = data)
        {
            int off = 0;
            while (off < data.Length)
            {
                nint n = Libc.write(fd.Fd, p + off, data.Length - off);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EINTR) continue;
                    throw new NativeException(errno, "write", fd.Name);
                }
                off += (int)n;
            }
        }
    }

    /// <summary>
    /// Reads a stream socket until a descriptor arrives (SCM_RIGHTS) or EOF; returns the text
    /// read up to and including the message that carried it. With resetIsEnd, ECONNRESET (the
    /// peer exited without reading all it was sent) ends the text as EOF would.
    /// </summary>
    public static (string Text, SafeFd? Fd) ReceiveDescriptor(SafeFd socket, bool resetIsEnd = false)
    {
        const int SOL_SOCKET = 1, SCM_RIGHTS = 1, MSG_CMSG_CLOEXEC = 0x40000000;
        var text = new StringBuilder();
        byte* data = stackalloc byte[512];
        byte* control = stackalloc byte[64];
        for (;;)
        {
            var iov = new Libc.IoVec { Base = data, Length = 512 };
            var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = 64 };
            nint n = Libc.recvmsg(socket.Fd, &msg, MSG_CMSG_CLOEXEC);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                if (errno == Libc.ECONNRESET && resetIsEnd) return (text.ToString(), null);
                throw new NativeException(errno, "recvmsg", socket.Name);
            }
            text.Append(Encoding.UTF8.GetString(data, (int)n));
            // struct cmsghdr: size_t len, int level, int type, then the data.
            if (msg.ControlLength >= 20 && *(int*)(control + 8) == SOL_SOCKET && *(int*)(control + 12) == SCM_RIGHTS)
                return (text.ToString(), new SafeFd(*(int*)(control + 16)));
            if (n == 0) return (text.ToString(), null);
        }
    }

    /// <summary>One read; 0 at EOF.</summary>
    public static int Read(SafeFd fd, Span<byte> buffer)
    {
        fixed (byte* p = buffer)
            for (;;)
            {
                nint n = Libc.read(fd.Fd, p, buffer.Length);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Libc.EINTR) throw new NativeException(errno, "read", fd.Name);
            }
    }

    /// <summary>Reads until EOF; with resetIsEnd, ECONNRESET too (as ReceiveDescriptor).</summary>
    public static string ReadToEnd(SafeFd fd, bool resetIsEnd = false)
    {
        var sb = new MemoryStream();
        byte* buf = stackalloc byte[4096];
        for (;;)
        {
            nint n = Libc.read(fd.Fd, buf, 4096);
            if (n < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EINTR) continue;
                if (errno == Libc.ECONNRESET && resetIsEnd) break;
                throw new NativeException(errno, "read", fd.Name);
            }
            if (n == 0) break;
            sb.Write(new ReadOnlySpan<byte>(buf, (int)n));
        }
        return Encoding.UTF8.GetString(sb.GetBuffer(), 0, (int)sb.Length);
    }

    /// <summary>
    /// Atomically replaces a file: temp file, fsync, rename, fsync of the directory. A refused
    /// write removes its temp file. Not durable: without the fsyncs, for files in the run
    /// directory, which a reboot empties (the rename alone keeps them whole if the daemon dies).
    /// </summary>
    public static void WriteFileAtomic(string path, ReadOnlySpan<byte> data, int mode = 0x180, bool durable = true)
    {
        string dir = System.IO.Path.GetDirectoryName(path)!;
        string tmp = System.IO.Path.Combine(dir, $".{System.IO.Path.GetFileName(path)}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp");
        try
        {
            using (var fd = Open(tmp, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW, mode))
            {
                WriteAll(fd, data);
                if (durable && Libc.fsync(fd.Fd) < 0) throw NativeException.FromLastError("fsync", tmp);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
        if (!durable) return;
        using var dirFd = Open(dir, Libc.O_RDONLY | Libc.O_DIRECTORY);
        Libc.fsync(dirFd.Fd);
    }

    /// <summary>Writes back everything dirty of the file system path is on (syncfs(2)).</summary>
    public static void SyncFs(string path)
    {
        using var fd = Open(path, Libc.O_RDONLY | Libc.O_DIRECTORY);
        if (Libc.syncfs(fd.Fd) < 0) throw NativeException.FromLastError("syncfs", path);
    }

    /// <summary>
    /// Writes a file that must not exist yet, with one fsync and no rename: for a file in a
    /// staging directory, which a directory rename publishes whole. A failed write removes it.
    /// </summary>
    public static void WriteNewFile(string path, ReadOnlySpan<byte> data, int mode = 0x180)
    {
        try
        {
            using var fd = Open(path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW, mode);
            WriteAll(fd, data);
            if (Libc.fsync(fd.Fd) < 0) throw NativeException.FromLastError("fsync", path);
        }
        catch (NativeException e) when (e.Errno != Tmds.Linux.LibC.EEXIST)
        {
            File.Delete(path);
            throw;
        }
    }

    /// <summary>Writes text to an existing kernel file (procfs, sysfs) in one write, as the kernel wants it.</summary>
    public static void WriteText(string path, string text)
    {
        using var fd = Open(path, Libc.O_WRONLY);
        WriteAll(fd, Encoding.ASCII.GetBytes(text));
    }

    public static void Chown(string path, int uid, int gid)
    {
        if (Libc.lchown(path, uid, gid) < 0) throw NativeException.FromLastError("chown", path);
    }
}

/// <summary>How a process ended: an exit code, or the signal that killed it.</summary>
public sealed record ExitStatus(int? Code, int? Signal);
