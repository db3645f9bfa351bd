using System.Runtime.InteropServices;
using System.Text;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.State;

/// <summary>
/// Removes a directory tree the way rm -rf should: relative to directory fds (so depth and
/// PATH_MAX do not matter), never following a symlink (a link is removed, not its target),
/// holding one directory open at a time. Climbing back up goes through "..", checked against
/// the device and inode seen on the way down, so a directory moved meanwhile is never emptied
/// in its new place.
/// </summary>
public static class TreeRemover
{
    private const int DirFlags = At.DirFlags;

    /// <summary>Removes parent/name, whatever it is; nothing there is not an error.</summary>
    public static void Remove(string parent, string name)
    {
        using var top = Sys.Open(parent, DirFlags);
        if (Unlink(top.Fd, name, parent)) return;
        int fd = At.openat(top.Fd, name, DirFlags);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.ENOENT) return;
            throw new NativeException(errno, "open", Path.Combine(parent, name));
        }
        var topId = Identity(top.Fd);
        // The names walked down and the identity of each directory's parent, to climb back safely.
        var names = new List<string>();
        var parents = new List<(uint, uint, ulong)>();
        nint dir = At.fdopendir(fd);
        if (dir == 0)
        {
            Libc.close(fd);
            throw NativeException.FromLastError("fdopendir", Path.Combine(parent, name));
        }
        names.Add(name);
        parents.Add(topId);
        try
        {
            while (true)
            {
                string? child = At.NextEntry(dir, out bool isDir);
                if (child is not null)
                {
                    if (!isDir && Unlink(At.dirfd(dir), child, Where(parent, names))) continue;
                    int childFd = At.openat(At.dirfd(dir), child, DirFlags);
                    if (childFd < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        if (errno == Libc.ENOENT) continue;
                        // Replaced by a file or a link since it was read: that is unlinked instead.
                        if ((errno == At.ENOTDIR || errno == At.ELOOP) && Unlink(At.dirfd(dir), child, Where(parent, names))) continue;
                        throw new NativeException(errno, "open", Path.Combine(Where(parent, names), child));
                    }
                    var here = Identity(At.dirfd(dir));
                    nint next = At.fdopendir(childFd);
                    if (next == 0)
                    {
                        Libc.close(childFd);
                        throw NativeException.FromLastError("fdopendir", Path.Combine(Where(parent, names), child));
                    }
                    At.closedir(dir);
                    dir = next;
                    names.Add(child);
                    parents.Add(here);
                    continue;
                }
                // This directory is empty: go up and remove it there.
                string done = names[^1];
                var expected = parents[^1];
                int upFd = At.openat(At.dirfd(dir), "..", DirFlags);
                if (upFd < 0) throw NativeException.FromLastError("open", Where(parent, names) + "/..");
                names.RemoveAt(names.Count - 1);
                parents.RemoveAt(parents.Count - 1);
                if (names.Count == 0)
                {
                    Libc.close(upFd);
                    if (At.unlinkat(top.Fd, done, At.AT_REMOVEDIR) < 0)
                        throw NativeException.FromLastError("rmdir", Path.Combine(parent, done));
                    return;
                }
                if (Identity(upFd) != expected)
                {
                    Libc.close(upFd);
                    throw new NativeException(Libc.EBUSY, "climb back to", Where(parent, names) + " (it was moved)");
                }
                nint up = At.fdopendir(upFd);
                if (up == 0)
                {
                    Libc.close(upFd);
                    throw NativeException.FromLastError("fdopendir", Where(parent, names));
                }
                At.closedir(dir);
                dir = up;
                if (At.unlinkat(At.dirfd(dir), done, At.AT_REMOVEDIR) < 0)
                    throw NativeException.FromLastError("rmdir", Path.Combine(Where(parent, names), done));
                At.rewinddir(dir);
            }
        }
        finally
        {
            if (dir != 0) At.closedir(dir);
        }
    }

    /// <summary>Removes path's tree if it is there.</summary>
    public static void Remove(string path) =>
        Remove(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(path))!, Path.GetFileName(Path.TrimEndingDirectorySeparator(path)));

    /// <summary>Unlinks a non-directory; false when it is a directory.</summary>
    private static bool Unlink(int dirFd, string name, string where)
    {
        if (At.unlinkat(dirFd, name, 0) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.ENOENT) return true;
        // unlink of a directory: EISDIR on Linux, EPERM by POSIX.
        if (errno == At.EISDIR || errno == At.EPERM) return false;
        throw new NativeException(errno, "unlink", Path.Combine(where, name));
    }

    private static (uint Major, uint Minor, ulong Inode) Identity(int fd)
    {
        var id = At.Stat(fd, "", $"fd {fd}");
        return (id.DevMajor, id.DevMinor, id.Inode);
    }

    private static string Where(string parent, List<string> names)
    {
        var s = new StringBuilder(parent);
        foreach (var n in names) s.Append('/').Append(n);
        return s.ToString();
    }
}
