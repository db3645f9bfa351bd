using System.Runtime.InteropServices;

namespace SystemContainers.Engine.Interop;

/// <summary>What statx says of one file, for walks that decide by type, device and size; Rdev is a device node's own number.</summary>
internal readonly record struct FileIdentity(uint Mode, uint Uid, uint Gid, uint DevMajor, uint DevMinor, ulong Inode, long Size, ulong MountId, uint RdevMajor, uint RdevMinor)
{
    public uint Type => Mode & 0xf000;
    public bool IsDirectory => Type == At.S_IFDIR;
    public bool IsRegular => Type == At.S_IFREG;
    public bool IsSymlink => Type == At.S_IFLNK;

    /// <summary>Whether both are on the same mount of the same file system.</summary>
    public bool SameMount(FileIdentity other) => DevMajor == other.DevMajor && DevMinor == other.DevMinor && MountId == other.MountId;
}

/// <summary>
/// The *at family: calls relative to a directory fd, one name at a time, so walks never depend
/// on PATH_MAX and never follow a symlink they did not ask for.
/// </summary>
internal static unsafe partial class At
{
    public const int DirFlags = Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC;
    public const int AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000;
    public const int EISDIR = 21, ENOTDIR = 20, ELOOP = 40, EPERM = 1, ENOTEMPTY = 39, EXDEV = 18, EAGAIN = 11;
    public const uint S_IFMT = 0xf000, S_IFDIR = 0x4000, S_IFREG = 0x8000, S_IFLNK = 0xa000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFSOCK = 0xc000;
    private const int STATX_BASIC = 0x7ff, STATX_MNT_ID = 0x1000;
    private const byte DT_DIR = 4;

    /// <summary>statx of dirFd/name without following a final symlink ("" for the fd itself).</summary>
    public static FileIdentity Stat(int dirFd, string name, string where)
    {
        // struct statx: stx_uid/gid at 20/24, stx_mode at 28, stx_ino at 32, stx_size at 40, stx_rdev_major/minor at 128/132, stx_dev_major/minor at 136/140, stx_mnt_id at 144.
        byte* buf = stackalloc byte[256];
        int flags = AT_SYMLINK_NOFOLLOW | (name.Length == 0 ? AT_EMPTY_PATH : 0);
        if (statx(dirFd, name, flags, STATX_BASIC | STATX_MNT_ID, buf) < 0) throw NativeException.FromLastError("statx", where);
        return new FileIdentity(*(ushort*)(buf + 28), *(uint*)(buf + 20), *(uint*)(buf + 24), *(uint*)(buf + 136), *(uint*)(buf + 140), *(ulong*)(buf + 32), *(long*)(buf + 40),
            *(ulong*)(buf + 144), *(uint*)(buf + 128), *(uint*)(buf + 132));
    }

    /// <summary>The next entry of a directory stream other than "." and ".."; null at its end.</summary>
    public static string? NextEntry(nint dir, out bool isDir)
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
            string s = Marshal.PtrToStringUTF8((nint)(entry + 19))!;
            if (s is "." or "..") continue;
            isDir = entry[18] == DT_DIR;
            return s;
        }
    }

    /// <summary>The names in a directory, read through a second fd so a walk's own fd keeps its offset.</summary>
    public static List<string> Names(SafeFd dir)
    {
        int fd = openat(dir.Fd, ".", DirFlags);
        if (fd < 0) throw NativeException.FromLastError("open", dir.Name);
        nint stream = fdopendir(fd);
        if (stream == 0)
        {
            Libc.close(fd);
            throw NativeException.FromLastError("opendir", dir.Name);
        }
        var names = new List<string>();
        try
        {
            while (NextEntry(stream, out _) is { } name) names.Add(name);
        }
        finally
        {
            closedir(stream);
        }
        return names;
    }

    public const ulong RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08, RESOLVE_IN_ROOT = 0x10;
    public const uint RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
    private const long SYS_openat2 = 437;

    /// <summary>openat2(2) with a struct open_how of flags (always CLOEXEC), mode and resolve; -1 and errno on failure.</summary>
    public static int openat2(int dirFd, string path, int flags, int mode, ulong resolve)
    {
        ulong* how = stackalloc ulong[3];
        how[0] = (ulong)(flags | Libc.O_CLOEXEC);
        how[1] = (ulong)mode;
        how[2] = resolve;
        int n = System.Text.Encoding.UTF8.GetByteCount(path);
        byte* name = stackalloc byte[n + 1];
        System.Text.Encoding.UTF8.GetBytes(path, new Span<byte>(name, n));
        name[n] = 0;
        return (int)Libc.syscall(SYS_openat2, dirFd, (long)name, (long)how, 3 * sizeof(ulong));
    }

    /// <summary>The target text of the symlink dirFd/name, never followed.</summary>
    public static string ReadLink(int dirFd, string name, string where)
    {
        byte* buf = stackalloc byte[4096];
        nint n = readlinkat(dirFd, name, buf, 4096);
        if (n < 0) throw NativeException.FromLastError("readlink", where);
        return System.Text.Encoding.UTF8.GetString(buf, (int)n);
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint readlinkat(int dirFd, string name, byte* buf, nint size);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int renameat2(int oldDirFd, string oldName, int newDirFd, string newName, uint flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int openat(int dirFd, string name, int flags, int mode = 0);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mkdirat(int dirFd, string name, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int mknodat(int dirFd, string name, int mode, ulong dev);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int symlinkat(string target, int dirFd, string name);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int linkat(int oldDirFd, string oldName, int newDirFd, string newName, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlinkat(int dirFd, string name, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int fchownat(int dirFd, string name, int owner, int group, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int utimensat(int dirFd, string name, long* times, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int futimens(int fd, long* times);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fchmod(int fd, int mode);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int fchmodat(int dirFd, string name, int mode, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int fsetxattr(int fd, string name, byte* value, nint size, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirFd, string path, int flags, int mask, byte* buf);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint fdopendir(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial byte* readdir(nint dir);

    [LibraryImport("libc")]
    public static partial void rewinddir(nint dir);

    [LibraryImport("libc")]
    public static partial int closedir(nint dir);

    [LibraryImport("libc")]
    public static partial int dirfd(nint dir);
}
