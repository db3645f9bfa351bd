using System.Diagnostics;
using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.State;

/// <summary>The bytes of the regular files under a tree; Partial says why the walk stopped early, if it did.</summary>
public sealed record TreeUsageResult(long Bytes, long Entries, string? Partial);

/// <summary>
/// Sums the sizes of regular files in a tree a container controls (its upper layer), bounded so
/// that one hostile tree cannot slow or break what reads it for every container: relative to
/// directory fds one name at a time (PATH_MAX does not matter; at most MaxDepth directories are
/// open), never following a symlink, never leaving the tree's mount (a bind mount loop is another
/// mount), and stopping at an entry cap or a deadline with a partial result instead of an error.
/// </summary>
public static class TreeUsage
{
    public const int MaxDepth = 256;
    public const long DefaultMaxEntries = 1_000_000;
    public static readonly TimeSpan DefaultBudget = TimeSpan.FromSeconds(2);
    private const int AT_FDCWD = -100;

    public static TreeUsageResult Measure(string dir, long maxEntries, TimeSpan budget)
    {
        int rootFd = At.openat(AT_FDCWD, dir, At.DirFlags);
        if (rootFd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return new(0, 0, errno == Libc.ENOENT ? null : new NativeException(errno, "open", dir).Message);
        }
        var clock = Stopwatch.StartNew();
        var stack = new Stack<nint>();
        long bytes = 0, entries = 0;
        string? partial = null;
        try
        {
            var root = At.Stat(rootFd, "", dir);
            nint top = At.fdopendir(rootFd);
            if (top == 0) throw NativeException.FromLastError("opendir", dir);
            rootFd = -1;
            stack.Push(top);
            while (stack.Count > 0 && partial is null)
            {
                string? name = At.NextEntry(stack.Peek(), out _);
                if (name is null)
                {
                    At.closedir(stack.Pop());
                    continue;
                }
                if (++entries > maxEntries) partial = $"stopped after {maxEntries} entries";
                else if ((entries & 1023) == 0 && clock.Elapsed > budget) partial = $"stopped after {budget.TotalSeconds:0.#} s and {entries} entries";
                int parent = At.dirfd(stack.Peek());
                FileIdentity id;
                try { id = At.Stat(parent, name, name); }
                catch (NativeException) { continue; } // removed while it was walked
                if (id.IsRegular) bytes += id.Size;
                if (!id.IsDirectory || !id.SameMount(root)) continue;
                if (stack.Count >= MaxDepth)
                {
                    partial = $"stopped at a directory more than {MaxDepth} levels deep";
                    continue;
                }
                int fd = At.openat(parent, name, At.DirFlags);
                if (fd < 0) continue;
                nint child = At.fdopendir(fd);
                if (child == 0)
                {
                    Libc.close(fd);
                    continue;
                }
                stack.Push(child);
            }
        }
        catch (NativeException e)
        {
            partial = e.Message;
        }
        finally
        {
            if (rootFd >= 0) Libc.close(rootFd);
            while (stack.Count > 0) At.closedir(stack.Pop());
        }
        return new(bytes, entries, partial);
    }
}
