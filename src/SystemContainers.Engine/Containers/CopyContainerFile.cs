using SystemContainers.Engine.Files;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Copies files into and out of a container (Copy-SystemContainerFile), running or stopped. The
/// copy holds the container's gate throughout, so it cannot start, stop or be removed meanwhile.
/// A running container's root is its init's (/proc/&lt;pid&gt;/root, checked through the pidfd after
/// the open, so a reused pid cannot redirect it); a stopped container's rootfs is mounted from the
/// same mounts a start uses, detached, so it is gone when the copy closes its fd, even on failure.
/// A root that is one volume holding the container's own ids (dir, btrfs) is copied to directly:
/// a file host root creates through its idmapped mount has no id in it (EOVERFLOW).
/// </summary>
internal sealed class CopyContainerFile(EngineParts parts)
{
    public async Task<FilePull> PullAsync(Container c, string path, bool recurse, CancellationToken ct)
    {
        var root = await OpenRootAsync(c, ct);
        try
        {
            return FilePull.Open(root, path, recurse);
        }
        catch
        {
            root.Dispose();
            throw;
        }
    }

    public async Task<FilePushResult> PushAsync(Container c, string destination, bool force, Stream archive, CancellationToken ct)
    {
        using var root = await OpenRootAsync(c, ct);
        return await new FilePush(root, destination, force).ReadAsync(archive, ct);
    }

    private async Task<ContainerRoot> OpenRootAsync(Container c, CancellationToken ct)
    {
        await c.Gate.WaitAsync(ct);
        var lease = new GateLease(c.Gate);
        try
        {
            if (!parts.Registry.IsCurrent(c)) throw ContainerRegistry.Gone(c.Name);
            c.Intact();
            var live = c.Live;
            if (parts.Storage.DirectRootOf(c.Record) is { } volume)
                return new ContainerRoot(Sys.Open(volume, Libc.O_RDONLY | Libc.O_DIRECTORY), null, c.Name, lease);
            return new ContainerRoot(live is null ? MountStopped(c) : RootOf(c, live), c.Record.IdMap, c.Name, lease);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    private static SafeFd RootOf(Container c, LiveInit live)
    {
        var root = Sys.Open($"/proc/{live.Pid}/root", Libc.O_RDONLY | Libc.O_DIRECTORY);
        if (Sys.PidfdSignal(live.Pidfd, 0)) return root;
        root.Dispose();
        throw c.NotRunning();
    }

    private SafeFd MountStopped(Container c)
    {
        bool shifted = c.Record.IdMap is not null && (parts.Options.ShiftIds || c.Runtime.Shifted);
        Directory.CreateDirectory(Path.Combine(parts.RunDirOf(c.Name), "layers"));
        try
        {
            return parts.ScInit.MountRootfs(parts.RootfsOf(c.Record, shifted));
        }
        catch (ScInitException e)
        {
            throw new EngineException(FailureKind.Failed, "MountFailed", $"cannot mount the rootfs of stopped container '{c.Name}': {e.Message}");
        }
    }
}
