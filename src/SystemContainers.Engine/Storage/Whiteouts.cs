using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// Overlay whiteouts (character devices 0:0) in an upper layer for everything its lower layer
/// has that it does not, so the merged tree is the upper alone. Both trees are walked by
/// directory fds one name at a time, never through a symlink.
/// </summary>
internal static partial class Whiteouts
{
    private const int S_IFCHR = 0x2000;

    [LibraryImport("libc", EntryPoint = "mknodat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mknodat(int dirFd, string name, int mode, ulong dev);

    public static void Add(string lower, string upper)
    {
        using var l = Sys.Open(lower, At.DirFlags);
        using var u = Sys.Open(upper, At.DirFlags);
        Walk(l, u, upper, 0);
    }

    private static void Walk(SafeFd lower, SafeFd upper, string where, int depth)
    {
        if (depth > Images.RootfsExtractor.MaxDepth) throw new InvalidDataException($"{where} is nested more than {Images.RootfsExtractor.MaxDepth} directories deep");
        foreach (var name in At.Names(lower))
        {
            string path = $"{where}/{name}";
            FileIdentity above;
            try { above = At.Stat(upper.Fd, name, path); }
            catch (NativeException e) when (e.Errno == Libc.ENOENT)
            {
                if (mknodat(upper.Fd, name, S_IFCHR, 0) < 0) throw NativeException.FromLastError("make whiteout", path);
                continue;
            }
            if (!above.IsDirectory || !At.Stat(lower.Fd, name, path).IsDirectory) continue;
            using var l = Open(lower, name, path);
            using var u = Open(upper, name, path);
            Walk(l, u, path, depth + 1);
        }
    }

    private static SafeFd Open(SafeFd dir, string name, string path)
    {
        int fd = At.openat(dir.Fd, name, At.DirFlags);
        return fd < 0 ? throw NativeException.FromLastError("open", path) : new SafeFd(fd, name: path);
    }
}
