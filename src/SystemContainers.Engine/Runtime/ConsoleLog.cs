using System.Runtime.InteropServices;
using System.Text;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// Drains a container's console pty into a bounded log file. Undrained, a console blocks init
/// (systemd stalls writing to a full pty), so the daemon always reads it. The daemon also holds
/// a slave fd: systemd closes its console between writes, and a pty with no open slave reports
/// hang-up to its master.
/// </summary>
public sealed unsafe class ConsoleLog : IDisposable
{
    private const long MaxBytes = 1 << 20;
    private readonly SafeFd _master;
    private readonly SafeFd _slave;
    private readonly string _path;
    private readonly EventLoop _loop;
    private readonly object _lock = new();
    private FileStream _file;

    public ConsoleLog(SafeFd master, SafeFd slave, string path, EventLoop loop)
    {
        _master = master;
        _slave = slave;
        _path = path;
        _loop = loop;
        _file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 0);
        int flags = Tmds.Linux.LibC.fcntl(master.Fd, Tmds.Linux.LibC.F_GETFL, 0);
        Tmds.Linux.LibC.fcntl(master.Fd, Tmds.Linux.LibC.F_SETFL, flags | Libc.O_NONBLOCK);
        loop.WatchReadable(master, Drain, () => { });
    }

    public string Path => _path;

    /// <summary>
    /// The console log from a byte offset. The log restarts when it rotates (or the container
    /// restarts): an offset past its end then reads it from the start, and says so.
    /// </summary>
    public static ConsoleText ReadFrom(string path, long offset)
    {
        FileStream opened;
        try
        {
            opened = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return new ConsoleText("", 0, offset > 0);
        }
        using var file = opened;
        bool restarted = offset > file.Length;
        file.Position = restarted ? 0 : offset;
        long start = file.Position;
        var bytes = new byte[file.Length - start];
        file.ReadExactly(bytes);
        int whole = WholeUtf8(bytes);
        return new ConsoleText(Encoding.UTF8.GetString(bytes, 0, whole), start + whole, restarted);
    }

    /// <summary>How many leading bytes end on a whole UTF-8 character: a character the writer is midway through waits for the next read.</summary>
    private static int WholeUtf8(byte[] bytes)
    {
        for (int back = 1; back <= Math.Min(4, bytes.Length); back++)
        {
            byte b = bytes[^back];
            if ((b & 0xC0) == 0x80) continue;
            int length = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return length > back ? bytes.Length - back : bytes.Length;
        }
        return bytes.Length;
    }

    private bool Drain()
    {
        lock (_lock) return DrainLocked();
    }

    private bool DrainLocked()
    {
        byte* buf = stackalloc byte[8192];
        for (;;)
        {
            nint n = Libc.read(_master.Fd, buf, 8192);
            if (n > 0)
            {
                Append(new ReadOnlySpan<byte>(buf, (int)n));
                continue;
            }
            if (n == 0) return false;
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EINTR) continue;
            // EAGAIN: drained for now. EIO: every slave is closed, the container is gone.
            return errno == Libc.EAGAIN;
        }
    }

    private void Append(ReadOnlySpan<byte> data)
    {
        if (_file.Length + data.Length > MaxBytes)
        {
            _file.Dispose();
            File.Move(_path, _path + ".1", overwrite: true);
            _file = new FileStream(_path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 0);
        }
        _file.Write(data);
    }

    /// <summary>Keeps what init wrote last (its shutdown messages), then closes the pty.</summary>
    public void Dispose()
    {
        _loop.Unregister(_master);
        lock (_lock)
        {
            DrainLocked();
            _master.Dispose();
            _slave.Dispose();
            _file.Dispose();
        }
    }
}

/// <summary>Console log text read from an offset: Next is where the next read starts; Restarted, that the log began anew.</summary>
public sealed record ConsoleText(string Text, long Next, bool Restarted);
