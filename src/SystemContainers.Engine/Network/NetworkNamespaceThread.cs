using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Network;

/// <summary>
/// Runs a little work in another network namespace: on a thread of its own that joins it
/// (allowed in a threaded process, unlike a user or mount namespace) and then ends, so no other
/// code ever runs there. Sockets made there stay in that namespace.
/// </summary>
public static class NetworkNamespaceThread
{
    private const int CLONE_NEWNET = 0x40000000;

    /// <summary>Runs work in the namespace at path (/proc/PID/ns/net, /run/netns/NAME).</summary>
    public static T Run<T>(string path, Func<T> work)
    {
        using var ns = Sys.Open(path, Libc.O_RDONLY);
        return Run(ns, work);
    }

    /// <summary>Runs work in the namespace ns refers to; ns stays open until the work is done (a closed one throws, never joins whatever reused its number).</summary>
    public static T Run<T>(SafeFd ns, Func<T> work)
    {
        bool held = false;
        ns.DangerousAddRef(ref held);
        try
        {
            return RunHeld(ns, work);
        }
        finally
        {
            if (held) ns.DangerousRelease();
        }
    }

    /// <summary>A new network namespace with nothing but lo (up: criu probes the kernel through it), held by the returned fd alone.</summary>
    public static SafeFd CreateEmpty() => OnThread(() =>
    {
        if (Libc.unshare(CLONE_NEWNET) < 0) throw NativeException.FromLastError("unshare a network namespace");
        var ns = Sys.Open("/proc/thread-self/ns/net", Libc.O_RDONLY);
        try
        {
            using var netlink = new RtNetlink();
            netlink.SetUp("lo");
            return ns;
        }
        catch
        {
            ns.Dispose();
            throw;
        }
    });

    private static T RunHeld<T>(SafeFd ns, Func<T> work) => OnThread(() =>
    {
        if (Libc.setns(ns.Fd, CLONE_NEWNET) < 0) throw NativeException.FromLastError("join network namespace", ns.Name);
        return work();
    });

    private static T OnThread<T>(Func<T> work)
    {
        T? result = default;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                error = e;
            }
        }) { Name = "netns-visitor" };
        thread.Start();
        thread.Join();
        return error is null ? result! : throw error;
    }
}
