using System.Runtime.InteropServices;
using System.Text;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>The btrfs subvolume ioctls (linux/btrfs.h), relative to the parent directory's fd.</summary>
internal static unsafe class Btrfs
{
    // _IOW(0x94, nr, struct btrfs_ioctl_vol_args{,_v2}), both 4096 bytes.
    private const ulong SUBVOL_CREATE = 0x5000940E, SNAP_DESTROY = 0x5000940F, SNAP_CREATE_V2 = 0x50009417;
    private const ulong SUBVOL_RDONLY = 1UL << 1;
    private const int ArgsSize = 4096, NameOffset = 8, NameOffsetV2 = 56;

    public static void CreateSubvolume(string path) =>
        OnParent(path, "create btrfs subvolume", (parent, args) => Libc.ioctl(parent, SUBVOL_CREATE, (void*)args), NameOffset);

    /// <summary>A snapshot of the subvolume source at path, read-only or writable.</summary>
    public static void Snapshot(string source, string path, bool readOnly)
    {
        using var src = Sys.Open(source, At.DirFlags);
        OnParent(path, $"snapshot btrfs subvolume {source} to", (parent, args) =>
        {
            *(long*)args = src.Fd;
            ((ulong*)args)[2] = readOnly ? SUBVOL_RDONLY : 0;
            return Libc.ioctl(parent, SNAP_CREATE_V2, (void*)args);
        }, NameOffsetV2);
    }

    /// <summary>Deletes a subvolume with everything in it (read-only ones too).</summary>
    public static void Destroy(string path) =>
        OnParent(path, "delete btrfs subvolume", (parent, args) => Libc.ioctl(parent, SNAP_DESTROY, (void*)args), NameOffset);

    private static void OnParent(string path, string what, Func<int, nint, int> call, int nameOffset)
    {
        string name = Path.GetFileName(path);
        byte[] utf8 = Encoding.UTF8.GetBytes(name);
        if (utf8.Length == 0 || utf8.Length >= 255) throw new NativeException(Libc.EINVAL, what, path);
        using var parent = Sys.Open(Path.GetDirectoryName(path)!, At.DirFlags);
        byte* args = (byte*)NativeMemory.AllocZeroed(ArgsSize);
        try
        {
            utf8.CopyTo(new Span<byte>(args + nameOffset, ArgsSize - nameOffset));
            if (call(parent.Fd, (nint)args) < 0) throw NativeException.FromLastError(what, path);
        }
        finally
        {
            NativeMemory.Free(args);
        }
    }
}
