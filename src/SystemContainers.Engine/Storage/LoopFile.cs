using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A pool's sparse loop file with a btrfs on it, mounted with an auto-clearing loop device
/// (mount -o loop): unmounting the pool also frees the device.
/// </summary>
internal static class LoopFile
{
    private const long GiB = 1L << 30;
    public const long MinSize = 256L << 20;

    /// <summary>LXD's default: 20% of the free space where the file goes, at most 30 GiB.</summary>
    public static long DefaultSize(string file) =>
        Math.Min(30 * GiB, FsStat.Of(Path.GetDirectoryName(file)!).Free / 5);

    public static void Create(string file, long size)
    {
        if (size < MinSize)
            throw EngineException.Invalid("InvalidPoolSize", $"loop file {file} would be {size} bytes; btrfs needs at least {MinSize}");
        if (File.Exists(file) || Directory.Exists(file))
            throw EngineException.Conflict("PoolSourceInUse", $"loop file {file} already exists");
        using var f = new FileStream(file, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        f.SetLength(size);
    }

    public static void Format(string file) =>
        StorageTool.Run("/usr/sbin/mkfs.btrfs", ["mkfs.btrfs", "-q", "-f", file], $"make a btrfs on {file}");

    public static void Mount(string file, string mountPoint) =>
        StorageTool.Run("/usr/bin/mount", ["mount", "-t", "btrfs", "-o", "loop,user_subvol_rm_allowed", "--", file, mountPoint],
            $"mount {file} on {mountPoint}");

    public static void Unmount(string mountPoint)
    {
        if (Libc.umount2(mountPoint, 0) < 0) throw NativeException.FromLastError("unmount", mountPoint);
    }

    /// <summary>Whether a file system is mounted on the directory.</summary>
    public static bool IsMounted(string dir) => MountInfo.IsMountPoint(dir);
}
