using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Device nodes an image carries (a host disk, a loop device, kvm): an imported rootfs keeps
/// none, since containers get their /dev from the runtime and the rootfs is mounted nodev.
/// </summary>
public static unsafe class DeviceNodes
{
    private const uint S_IFMT = 0xf000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFDIR = 0x4000;

    /// <summary>Removes every character and block node under rootfs; returns their paths relative to it.</summary>
    public static IReadOnlyList<string> RemoveAll(string rootfs)
    {
        var removed = new List<string>();
        Walk(rootfs, rootfs, removed);
        removed.Sort(StringComparer.Ordinal);
        return removed;
    }

    /// <summary>
    /// Descends only into what lstat calls a directory: an image's symlinks (/dev/fd is one, to
    /// /proc/self/fd) are entries like any other and never lead out of the rootfs.
    /// </summary>
    private static void Walk(string rootfs, string dir, List<string> removed)
    {
        foreach (var path in Directory.EnumerateFileSystemEntries(dir))
        {
            uint type = Mode(path) & S_IFMT;
            if (type == S_IFDIR) Walk(rootfs, path, removed);
            else if (type is S_IFCHR or S_IFBLK)
            {
                File.Delete(path);
                removed.Add(Path.GetRelativePath(rootfs, path));
            }
        }
    }

    private static uint Mode(string path)
    {
        Tmds.Linux.stat st;
        byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = utf8)
            if (Tmds.Linux.LibC.lstat(p, &st) < 0) throw new NativeException(Tmds.Linux.LibC.errno, "lstat", path);
        return (uint)st.st_mode;
    }
}
