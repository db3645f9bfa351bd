using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// One epoll thread for every container: pidfds (exits) and console pty masters (output).
/// A thread per container would not pack hundreds of containers on a host.
/// </summary>
public sealed unsafe class EventLoop : IDisposable
{
    private const int EPOLL_CTL_ADD = 1, EPOLL_CTL_DEL = 2;
    private const uint EPOLLIN = 1, EPOLLERR = 8, EPOLLHUP = 16;
    private readonly SafeFd _epoll;
    private readonly SafeFd _wake;
    private readonly ConcurrentDictionary<int, Action<uint>> _handlers = new();
    private readonly Thread _thread;
    private volatile bool _stopping;

    public EventLoop()
    {
        int ep = Libc.epoll_create1(Libc.O_CLOEXEC);
        if (ep < 0) throw NativeException.FromLastError("epoll_create1");
        _epoll = new SafeFd(ep);
        int ev = Libc.eventfd(0, Libc.O_CLOEXEC | Libc.O_NONBLOCK);
        if (ev < 0) throw NativeException.FromLastError("eventfd");
        _wake = new SafeFd(ev);
        Register(_wake, EPOLLIN, _ => { });
        _thread = new Thread(Run) { IsBackground = true, Name = "systemcontainers-events" };
        _thread.Start();
    }

    /// <summary>Calls onExit once, on a pool thread, when the process behind pidfd has exited.</summary>
    public void WatchExit(SafeFd pidfd, Action<ExitStatus?> onExit)
    {
        Register(pidfd, EPOLLIN, _ =>
        {
            Unregister(pidfd);
            ExitStatus? status = Sys.ReapPidfd(pidfd);
            // A child whose exit a tracer still holds (criu's dump) is reaped once it lets go, off the loop thread.
            ThreadPool.QueueUserWorkItem(_ => onExit(status ?? Sys.ReapPidfd(pidfd, wait: true)));
        });
    }

    /// <summary>Calls onReadable on the loop thread while fd is readable; a false return or a hang-up unregisters it.</summary>
    public void WatchReadable(SafeFd fd, Func<bool> onReadable, Action onClosed)
    {
        Register(fd, EPOLLIN, events =>
        {
            bool keep = onReadable();
            if (!keep || (events & (EPOLLHUP | EPOLLERR)) != 0)
            {
                Unregister(fd);
                onClosed();
            }
        });
    }

    public void Unregister(SafeFd fd)
    {
        if (_handlers.TryRemove(fd.Fd, out _))
            Libc.epoll_ctl(_epoll.Fd, EPOLL_CTL_DEL, fd.Fd, null);
    }

    private void Register(SafeFd fd, uint events, Action<uint> handler)
    {
        _handlers[fd.Fd] = handler;
        var ev = new Libc.EpollEvent { Events = events, Data = (ulong)fd.Fd };
        if (Libc.epoll_ctl(_epoll.Fd, EPOLL_CTL_ADD, fd.Fd, &ev) < 0)
        {
            _handlers.TryRemove(fd.Fd, out _);
            throw NativeException.FromLastError("epoll_ctl add", $"fd {fd.Fd}");
        }
    }

    private void Run()
    {
        var events = stackalloc Libc.EpollEvent[64];
        while (!_stopping)
        {
            int n = Libc.epoll_wait(_epoll.Fd, events, 64, -1);
            if (n < 0)
            {
                if (Marshal.GetLastPInvokeError() == Libc.EINTR) continue;
                return;
            }
            for (int i = 0; i < n; i++)
            {
                if (_handlers.TryGetValue((int)events[i].Data, out var handler))
                {
                    try { handler(events[i].Events); }
                    catch (Exception e) { EngineLog.Write($"event loop: {e.Message}"); }
                }
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        ulong one = 1;
        Libc.write(_wake.Fd, (byte*)&one, 8);
        _thread.Join(TimeSpan.FromSeconds(2));
        _epoll.Dispose();
        _wake.Dispose();
    }
}
