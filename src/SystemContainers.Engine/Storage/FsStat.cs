using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>statfs(2): the type and the space of the file system a path is on.</summary>
internal static unsafe partial class FsStat
{
    public const long BtrfsMagic = 0x9123683E;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statfs(string path, byte* buf);

    public static (long Type, long Free, long Total) Of(string path)
    {
        // struct statfs on x86_64/aarch64: f_type, f_bsize, f_blocks, f_bfree, f_bavail as 64-bit words first.
        byte* buf = stackalloc byte[128];
        if (statfs(path, buf) < 0) throw NativeException.FromLastError("statfs", path);
        long* w = (long*)buf;
        return (w[0], w[4] * w[1], w[2] * w[1]);
    }
}
