using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Device nodes an image carries (a host disk, a loop device, kvm): an imported rootfs keeps
/// none, since containers get their /dev from the runtime and the rootfs is mounted nodev.
/// </summary>
public static unsafe class DeviceNodes
{
    private const uint S_IFMT = 0xf000, S_IFCHR = 0x2000, S_IFBLK = 0x6000;

    /// <summary>Removes every character and block node under rootfs; returns their paths relative to it.</summary>
    public static IReadOnlyList<string> RemoveAll(string rootfs)
    {
        var removed = new List<string>();
        // The enumeration does not descend into symlinked directories, so it stays inside rootfs.
        foreach (var entry in new DirectoryInfo(rootfs).EnumerateFileSystemInfos("*", new EnumerationOptions
        {
            RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false,
        }))
        {
            uint type = Mode(entry.FullName) & S_IFMT;
            if (type is not (S_IFCHR or S_IFBLK)) continue;
            File.Delete(entry.FullName);
            removed.Add(Path.GetRelativePath(rootfs, entry.FullName));
        }
        removed.Sort(StringComparer.Ordinal);
        return removed;
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
