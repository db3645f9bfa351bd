using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Files;

/// <summary>
/// A container's root file system held open for a file copy, with the id map its files are
/// shifted by. Every path resolves inside it through openat2: RESOLVE_IN_ROOT keeps "/" and ".."
/// at its root, NO_MAGICLINKS refuses /proc/&lt;pid&gt;/root-style links, and NO_XDEV keeps to the
/// root file system, never into the container's /proc, /sys, /dev or a disk, which the daemon
/// (the host's root) could otherwise write through. It owns the fd and the lease that keeps the
/// container from starting or stopping meanwhile.
/// </summary>
internal sealed class ContainerRoot(SafeFd root, IdMap? map, string container, IDisposable lease) : IDisposable
{
    private const ulong InRoot = At.RESOLVE_IN_ROOT | At.RESOLVE_NO_MAGICLINKS | At.RESOLVE_NO_XDEV;
    private const ulong Below = At.RESOLVE_BENEATH | At.RESOLVE_NO_SYMLINKS | At.RESOLVE_NO_MAGICLINKS | At.RESOLVE_NO_XDEV;

    /// <summary>The id the kernel shows for a host id no map gives the container (overflowuid).</summary>
    public const long Overflow = 65534;

    public string Container => container;

    /// <summary>Opens an absolute container path; symlinks inside are followed only as the container would, inside its root.</summary>
    public SafeFd Open(string path, int flags, int mode = 0) => OpenWith(root.Fd, path, flags, mode, InRoot, path);

    /// <summary>Opens a path below dir without following any symlink or leaving dir's file system; shown names it in errors.</summary>
    public SafeFd OpenBelow(SafeFd dir, string relative, int flags, string shown, int mode = 0) =>
        OpenWith(dir.Fd, relative, flags, mode, Below, shown);

    private SafeFd OpenWith(int dir, string path, int flags, int mode, ulong resolve, string shown)
    {
        int fd;
        do fd = At.openat2(dir, path, flags, mode, resolve);
        while (fd < 0 && Marshal.GetLastPInvokeError() == At.EAGAIN);
        if (fd < 0) throw Refusal(Marshal.GetLastPInvokeError(), "open", shown);
        return new SafeFd(fd, name: shown);
    }

    /// <summary>An errno on a container path as the error a user can act on.</summary>
    public EngineException Refusal(int errno, string operation, string path) => errno switch
    {
        Libc.ENOENT => EngineException.NotFound("FileNotFound", $"'{path}' does not exist in container '{container}'"),
        At.ELOOP or At.EXDEV => new EngineException(FailureKind.Forbidden, "PathEscapes",
            $"cannot {operation} '{path}' in container '{container}': it leads through a link or mount out of the container's root file system ({NativeException.ErrnoName(errno)})"),
        Libc.EEXIST => EngineException.Conflict("FileExists", $"'{path}' already exists in container '{container}'; use -Force to replace it"),
        At.ENOTDIR => EngineException.Invalid("NotADirectory", $"cannot {operation} '{path}' in container '{container}': a part of it is not a directory"),
        _ => new EngineException(FailureKind.Failed, "FileCopyFailed", $"cannot {operation} '{path}' in container '{container}': {NativeException.ErrnoName(errno)}"),
    };

    /// <summary>The host uid a container uid is stored as; an id the map does not give is refused.</summary>
    public int HostUid(long uid, string path) => (int)Shift(uid, map?.UidBase ?? 0, "uid", path);

    public int HostGid(long gid, string path) => (int)Shift(gid, map?.GidBase ?? 0, "gid", path);

    private long Shift(long id, long baseId, string kind, string path)
    {
        long size = map?.Size ?? uint.MaxValue;
        if (id < 0 || id >= size)
            throw EngineException.Invalid("InvalidUser", $"{kind} {id} of '{path}' is not mapped in container '{container}' (it maps 0 to {size - 1})");
        return baseId + id;
    }

    /// <summary>The container's id for a host uid; one outside the map shows as the overflow id, as the kernel shows it.</summary>
    public long ContainerUid(uint hostUid) => Unshift(hostUid, map?.UidBase ?? 0);

    public long ContainerGid(uint hostGid) => Unshift(hostGid, map?.GidBase ?? 0);

    private long Unshift(uint hostId, long baseId)
    {
        long size = map?.Size ?? uint.MaxValue;
        long id = hostId - baseId;
        return id >= 0 && id < size ? id : Overflow;
    }

    public void Dispose()
    {
        root.Dispose();
        lease.Dispose();
    }
}
