using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// What a systemd container needs so criu can checkpoint it, set by the engine in its files at
/// each fresh start of a migration.stateful container: a drop-in for every service that turns
/// ProtectHostname= off. That setting runs the service in a UTS namespace of its own (logind,
/// hostnamed), and criu dumps no nested UTS namespace (research notes, section 1.2 #1); the
/// container has its own UTS namespace, so its services still cannot change the host's name. An
/// existing file of that name is left as it is, so a user can change it.
/// </summary>
internal sealed class CheckpointableSystemd(EngineParts parts)
{
    public const string DropIn = "/etc/systemd/system/service.d/10-systemcontainers-checkpoint.conf";

    private const string Text =
        "# Written by SystemContainers for migration.stateful=true: criu cannot checkpoint the UTS\n" +
        "# namespace ProtectHostname= gives a service; the container's own keeps the host's name safe.\n" +
        "[Service]\nProtectHostname=no\n";

    private const ulong InRoot = At.RESOLVE_IN_ROOT | At.RESOLVE_NO_MAGICLINKS | At.RESOLVE_NO_XDEV;
    private const ulong Below = At.RESOLVE_BENEATH | At.RESOLVE_NO_SYMLINKS | At.RESOLVE_NO_MAGICLINKS | At.RESOLVE_NO_XDEV;

    /// <summary>Writes the drop-in into the stopped container's root (mounted as a start mounts it, with shifted ids or not).</summary>
    public void Ensure(Container c, bool shifted)
    {
        if (!c.Spec.IsStateful || c.Record.InitKind != Images.InitKinds.Systemd) return;
        // A root that is one volume holds the container's own ids; a mounted one shows the host's.
        var volume = parts.Storage.DirectRootOf(c.Record);
        long uid = volume is null ? c.Record.IdMap?.UidBase ?? 0 : 0, gid = volume is null ? c.Record.IdMap?.GidBase ?? 0 : 0;
        using var root = volume is not null ? Sys.Open(volume, Libc.O_RDONLY | Libc.O_DIRECTORY) : parts.ScInit.MountRootfs(parts.RootfsOf(c.Record, shifted));
        string systemDir = Path.GetDirectoryName(Path.GetDirectoryName(DropIn))!, dropInDir = Path.GetFileName(Path.GetDirectoryName(DropIn))!;
        int system = At.openat2(root.Fd, systemDir, Libc.O_RDONLY | Libc.O_DIRECTORY, 0, InRoot);
        // No systemd unit directory: nothing reads a drop-in there.
        if (system < 0 && Marshal.GetLastPInvokeError() == Libc.ENOENT) return;
        using var systemFd = Opened(system, "open", systemDir);
        bool made = At.mkdirat(systemFd.Fd, dropInDir, 0x1ed) == 0;
        if (!made && Marshal.GetLastPInvokeError() != Libc.EEXIST) throw Failed(Marshal.GetLastPInvokeError(), "mkdir", Path.GetDirectoryName(DropIn)!);
        using var dir = Opened(At.openat2(systemFd.Fd, dropInDir, At.DirFlags, 0, Below), "open", Path.GetDirectoryName(DropIn)!);
        if (made) Own(dir, uid, gid, Path.GetDirectoryName(DropIn)!);
        int fd = At.openat2(dir.Fd, Path.GetFileName(DropIn), Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW, 0x1a4, Below);
        if (fd < 0 && Marshal.GetLastPInvokeError() == Libc.EEXIST) return;
        using var file = Opened(fd, "create", DropIn);
        Own(file, uid, gid, DropIn);
        Sys.WriteAll(file, System.Text.Encoding.UTF8.GetBytes(Text));
    }

    private static SafeFd Opened(int fd, string operation, string path) =>
        fd >= 0 ? new SafeFd(fd, name: path) : throw Failed(Marshal.GetLastPInvokeError(), operation, path);

    private static void Own(SafeFd fd, long uid, long gid, string path)
    {
        if (Libc.fchown(fd.Fd, (int)uid, (int)gid) < 0) throw Failed(Marshal.GetLastPInvokeError(), "chown", path);
    }

    private static NativeException Failed(int errno, string operation, string path) => new(errno, operation, "container path " + path);
}
