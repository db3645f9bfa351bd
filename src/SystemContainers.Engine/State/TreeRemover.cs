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
public static unsafe partial class TreeRemover
{
    private const int DirFlags = Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC;
    private const int AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000, STATX_INO = 0x100;
    private const int EISDIR = 21, ENOTDIR = 20, ELOOP = 40, EPERM = 1;
    private const byte DT_DIR = 4;

    /// <summary>Removes parent/name, whatever it is; nothing there is not an error.</summary>
    public static void Remove(string parent, string name)
    {
        using var top = Sys.Open(parent, DirFlags);
        if (Unlink(top.Fd, name, parent)) return;
        int fd = openat(top.Fd, name, DirFlags);
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
        nint dir = fdopendir(fd);
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
                string? child = NextEntry(dir, out bool isDir);
                if (child is not null)
                {
                    if (!isDir && Unlink(dirfd(dir), child, Where(parent, names))) continue;
                    int childFd = openat(dirfd(dir), child, DirFlags);
                    if (childFd < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        if (errno == Libc.ENOENT) continue;
                        // Replaced by a file or a link since it was read: that is unlinked instead.
                        if ((errno == ENOTDIR || errno == ELOOP) && Unlink(dirfd(dir), child, Where(parent, names))) continue;
                        throw new NativeException(errno, "open", Path.Combine(Where(parent, names), child));
                    }
                    var here = Identity(dirfd(dir));
                    nint next = fdopendir(childFd);
                    if (next == 0)
                    {
                        Libc.close(childFd);
                        throw NativeException.FromLastError("fdopendir", Path.Combine(Where(parent, names), child));
                    }
                    closedir(dir);
                    dir = next;
                    names.Add(child);
                    parents.Add(here);
                    continue;
                }
                // This directory is empty: go up and remove it there.
                string done = names[^1];
                var expected = parents[^1];
                int upFd = openat(dirfd(dir), "..", DirFlags);
                if (upFd < 0) throw NativeException.FromLastError("open", Where(parent, names) + "/..");
                names.RemoveAt(names.Count - 1);
                parents.RemoveAt(parents.Count - 1);
                if (names.Count == 0)
                {
                    Libc.close(upFd);
                    if (unlinkat(top.Fd, done, AT_REMOVEDIR) < 0)
                        throw NativeException.FromLastError("rmdir", Path.Combine(parent, done));
                    return;
                }
                if (Identity(upFd) != expected)
                {
                    Libc.close(upFd);
                    throw new NativeException(Libc.EBUSY, "climb back to", Where(parent, names) + " (it was moved)");
                }
                nint up = fdopendir(upFd);
                if (up == 0)
                {
                    Libc.close(upFd);
                    throw NativeException.FromLastError("fdopendir", Where(parent, names));
                }
                closedir(dir);
                dir = up;
                if (unlinkat(dirfd(dir), done, AT_REMOVEDIR) < 0)
                    throw NativeException.FromLastError("rmdir", Path.Combine(Where(parent, names), done));
                rewinddir(dir);
            }
        }
        finally
        {
            if (dir != 0) closedir(dir);
        }
    }

    /// <summary>Removes path's tree if it is there.</summary>
    public static void Remove(string path) =>
        Remove(Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(path))!, Path.GetFileName(Path.TrimEndingDirectorySeparator(path)));

    /// <summary>Unlinks a non-directory; false when it is a directory.</summary>
    private static bool Unlink(int dirFd, string name, string where)
    {
        if (unlinkat(dirFd, name, 0) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.ENOENT) return true;
        // unlink of a directory: EISDIR on Linux, EPERM by POSIX.
        if (errno == EISDIR || errno == EPERM) return false;
        throw new NativeException(errno, "unlink", Path.Combine(where, name));
    }

    private static string? NextEntry(nint dir, out bool isDir)
    {
        while (true)
        {
            byte* entry = readdir(dir);
            if (entry == null)
            {
                isDir = false;
                return null;
            }
            // struct dirent (64-bit glibc): d_ino, d_off, d_reclen, d_type, then the name.
            byte type = entry[18];
            byte* name = entry + 19;
            string s = Marshal.PtrToStringUTF8((nint)name)!;
            if (s is "." or "..") continue;
            isDir = type == DT_DIR;
            return s;
        }
    }

    private static (uint Major, uint Minor, ulong Inode) Identity(int fd)
    {
        // struct statx is 256 bytes: stx_ino at 32, stx_dev_major and stx_dev_minor at 136 and 140.
        byte* buf = stackalloc byte[256];
        if (statx(fd, "", AT_EMPTY_PATH, STATX_INO, buf) < 0) throw NativeException.FromLastError("statx", $"fd {fd}");
        return (*(uint*)(buf + 136), *(uint*)(buf + 140), *(ulong*)(buf + 32));
    }

    private static string Where(string parent, List<string> names)
    {
        var s = new StringBuilder(parent);
        foreach (var n in names) s.Append('/').Append(n);
        return s.ToString();
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat(int dirFd, string name, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int unlinkat(int dirFd, string name, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirFd, string path, int flags, int mask, byte* buf);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint fdopendir(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial byte* readdir(nint dir);

    [LibraryImport("libc")]
    private static partial void rewinddir(nint dir);

    [LibraryImport("libc")]
    private static partial int closedir(nint dir);

    [LibraryImport("libc")]
    private static partial int dirfd(nint dir);
}
