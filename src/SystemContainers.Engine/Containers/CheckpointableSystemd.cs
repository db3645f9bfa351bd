using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// What a systemd container needs so criu can checkpoint it, written once into the root of a new
/// migration.stateful container (create, copy, import), before its first start: a drop-in for
/// every service that turns ProtectHostname= off. That setting runs the service in a UTS
/// namespace of its own (logind, hostnamed), and criu dumps no nested UTS namespace (research
/// notes, section 1.2 #1); the container has its own UTS namespace, so its services still cannot
/// change the host's name. The key cannot be set later, so no other path makes such a container.
/// Nothing is written at a start, so what the container's root puts there since meets only its
/// own files. Whatever is at the file's name already (a file, a symlink, a fifo) is left as it
/// is, so a user can change it.
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

    /// <summary>Writes the drop-in into the new container's volume, made in containerDir (its staging directory), if it is a stateful systemd one.</summary>
    public void Ensure(Container c, string containerDir)
    {
        if (!c.Spec.IsStateful || c.Record.InitKind != Images.InitKinds.Systemd) return;
        var volume = new Volume(c.Name, containerDir);
        try
        {
            // A root that is one volume holds the container's own ids; a mounted one shows the host's.
            var direct = parts.Storage.DirectRootOf(c.Record, volume);
            long uid = direct is null ? c.Record.IdMap?.UidBase ?? 0 : 0, gid = direct is null ? c.Record.IdMap?.GidBase ?? 0 : 0;
            using var root = direct is not null ? Sys.Open(direct, Libc.O_RDONLY | Libc.O_DIRECTORY) : Mount(c, volume);
            Write(root, uid, gid);
        }
        catch (Exception e) when (e is NativeException or ScInitException)
        {
            throw new EngineException(FailureKind.Failed, "CheckpointSetupFailed",
                $"cannot write {DropIn} into container '{c.Name}' (migration.stateful=true needs it for criu): {e.Message}", e);
        }
    }

    /// <summary>The new root mounted detached, as its first start will mount it: idmapped, or through a shifted image where the host cannot.</summary>
    private SafeFd Mount(Container c, Volume volume)
    {
        bool shifted = c.Record.IdMap is not null && parts.Options.ShiftIds;
        Directory.CreateDirectory(Path.Combine(parts.RunDirOf(c.Name), "layers"));
        try
        {
            return parts.ScInit.MountRootfs(parts.RootfsOf(c.Record, volume, shifted));
        }
        catch (ScInitException e) when (c.Record.IdMap is not null && !shifted && e.Message.Contains("cannot idmap mount", StringComparison.Ordinal))
        {
            return parts.ScInit.MountRootfs(parts.RootfsOf(c.Record, volume, shifted: true));
        }
    }

    /// <summary>
    /// /etc/systemd/system is resolved inside the root (a symlink there stays in it); below it no
    /// symlink is followed, so a service.d that is one is refused (ENOTDIR), and the file is only
    /// ever created, never opened, so whatever is at its name (a symlink, a fifo) is left alone.
    /// </summary>
    private static void Write(SafeFd root, long uid, long gid)
    {
        string systemDir = Path.GetDirectoryName(Path.GetDirectoryName(DropIn))!, dropInDir = Path.GetDirectoryName(DropIn)!;
        int system = At.openat2(root.Fd, systemDir, Libc.O_RDONLY | Libc.O_DIRECTORY, 0, InRoot);
        // No systemd unit directory: nothing reads a drop-in there.
        if (system < 0 && Marshal.GetLastPInvokeError() == Libc.ENOENT) return;
        using var systemFd = Opened(system, "open", systemDir);
        bool made = At.mkdirat(systemFd.Fd, Path.GetFileName(dropInDir), 0x1ed) == 0;
        if (!made && Marshal.GetLastPInvokeError() != Libc.EEXIST) throw Failed(Marshal.GetLastPInvokeError(), "mkdir", dropInDir);
        using var dir = Opened(At.openat2(systemFd.Fd, Path.GetFileName(dropInDir), At.DirFlags, 0, Below), "open", dropInDir);
        if (made) Own(dir, uid, gid, dropInDir);
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
