using System.Runtime.InteropServices;

namespace SystemContainers.PowerShell;

/// <summary>
/// Raw bytes from the local terminal (fd 0), as typed. .NET's console stdin stream cannot serve
/// here: on a terminal it edits and echoes a whole line itself before it returns any of it, and a
/// read blocked in it would go on taking the keystrokes meant for pwsh's prompt after the session.
/// A read here waits in poll on fd 0 and a wake-up pipe, so <see cref="Dispose"/> ends it at once.
/// </summary>
internal sealed partial class TerminalInput : IDisposable
{
    private const short POLLIN = 0x1, POLLHUP = 0x10, POLLERR = 0x8;
    private const int O_CLOEXEC = 0x80000, EINTR = 4, EAGAIN = 11;
    private readonly int _wakeRead, _wakeWrite;
    private int _disposed;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int poll(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nint count);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int pipe2(int* fds, int flags);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    public unsafe TerminalInput()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0) throw new IOException($"cannot create pipe: errno {Marshal.GetLastPInvokeError()}");
        _wakeRead = fds[0];
        _wakeWrite = fds[1];
    }

    /// <summary>Blocks until the terminal has input; 0 at its end or once disposed.</summary>
    public unsafe int Read(Span<byte> buffer)
    {
        PollFd* fds = stackalloc PollFd[2];
        for (;;)
        {
            if (Volatile.Read(ref _disposed) != 0) return 0;
            fds[0] = new PollFd { Fd = 0, Events = POLLIN };
            fds[1] = new PollFd { Fd = _wakeRead, Events = POLLIN };
            if (poll(fds, 2, -1) < 0)
            {
                if (Marshal.GetLastPInvokeError() == EINTR) continue;
                return 0;
            }
            if (fds[1].Revents != 0) return 0;
            if ((fds[0].Revents & POLLIN) == 0)
            {
                if ((fds[0].Revents & (POLLHUP | POLLERR)) != 0) return 0;
                continue;
            }
            fixed (byte* p = buffer)
            {
                nint n = read(0, p, buffer.Length);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != EINTR && errno != EAGAIN) return 0;
            }
        }
    }

    /// <summary>Wakes a blocked <see cref="Read"/>, which then returns 0; the pipe closes with the last reader gone.</summary>
    public unsafe void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        byte b = 1;
        write(_wakeWrite, &b, 1);
        close(_wakeWrite);
    }

    /// <summary>Closes the wake-up pipe's read end once no read can be running any more.</summary>
    public void Close()
    {
        Dispose();
        close(_wakeRead);
    }
}
