using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// btrfs, on an existing btrfs directory or on a loop file the pool makes (LoopFile): each image
/// a read-only subvolume images/&lt;fingerprint&gt;, made the first time a container of this pool
/// uses it, and each container a writable snapshot of it, containers/&lt;name&gt;, mounted
/// idmapped with no overlay (the disk keeps the image's unshifted owners).
/// </summary>
internal sealed class BtrfsDriver(string root, string? loopFile, long loopSize) : IStorageDriver
{
    private readonly object _imageLock = new();

    private string Volumes => Path.Combine(root, "containers");
    private string Images => Path.Combine(root, "images");
    private string SnapshotsDir => Path.Combine(root, "containers-snapshots");
    private string Receiving => Path.Combine(root, "receiving");

    public string Root => root;

    public void CreatePool()
    {
        using var revert = new Reverter();
        if (loopFile is not null)
        {
            LoopFile.Create(loopFile, loopSize);
            revert.Add($"loop file {loopFile}", () => File.Delete(loopFile));
            LoopFile.Format(loopFile);
            PoolDirs.Make(root);
            revert.Add($"mount point {root}", () => Directory.Delete(root));
            LoopFile.Mount(loopFile, root);
            revert.Add($"the mount on {root}", () => LoopFile.Unmount(root));
        }
        else
        {
            PoolDirs.CheckSource(root);
            long type = FsStat.Of(root).Type;
            if (type != FsStat.BtrfsMagic)
                throw EngineException.Invalid("InvalidPoolSource", $"pool source {root} is not on btrfs (file system type 0x{type:x})");
        }
        PoolDirs.MakeNew(Volumes);
        revert.Add($"directory {Volumes}", () => Directory.Delete(Volumes));
        PoolDirs.MakeNew(Images);
        revert.Success();
    }

    public void ActivatePool()
    {
        if (loopFile is not null && !LoopFile.IsMounted(root)) LoopFile.Mount(loopFile, root);
        PoolDirs.CheckPresent(Volumes);
        // Receives the daemon died in: their subvolumes belong to no volume yet.
        if (Directory.Exists(Receiving))
            foreach (var staging in Directory.EnumerateDirectories(Receiving)) RemoveStaging(staging);
    }

    public void DeletePool()
    {
        foreach (var image in Directory.EnumerateDirectories(Images)) Btrfs.Destroy(image);
        Directory.Delete(Images);
        Directory.Delete(Volumes);
        if (Directory.Exists(SnapshotsDir)) Directory.Delete(SnapshotsDir);
        if (Directory.Exists(Receiving)) Directory.Delete(Receiving);
        if (loopFile is null) return;
        LoopFile.Unmount(root);
        Directory.Delete(root);
        File.Delete(loopFile);
    }

    public void CreateVolume(Volume volume, VolumeSource image, IdMap? map)
    {
        string target = PathOf(volume);
        PoolDirs.CheckAbsent(target);
        Btrfs.Snapshot(ImageSubvolume(image), target, readOnly: false);
    }

    public IReadOnlyList<RootMount> RootMounts(Volume volume, VolumeSource image, IdMap? map, bool shifted, RootTarget at) =>
        PoolDirs.IdmappedRoot("btrfs", PathOf(volume), map, shifted, at);

    public void DeleteVolume(Volume volume)
    {
        string snapshots = SnapshotsOf(volume);
        if (Directory.Exists(snapshots))
        {
            foreach (var snapshot in Directory.EnumerateDirectories(snapshots)) Btrfs.Destroy(snapshot);
            Directory.Delete(snapshots);
        }
        string path = PathOf(volume);
        if (Directory.Exists(path)) Btrfs.Destroy(path);
    }

    /// <summary>A writable snapshot of the volume or of its snapshot: instant, sharing every extent; the disk keeps unshifted owners, so any id map fits.</summary>
    public void CopyVolume(Volume source, string? snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap)
    {
        string to = PathOf(target);
        PoolDirs.CheckAbsent(to);
        Btrfs.Snapshot(snapshot is null ? PathOf(source) : SnapshotPath(source, snapshot), to, readOnly: false);
    }

    /// <summary>A read-only snapshot of the snapshot, in target's snapshot directory: instant, sharing every extent.</summary>
    public void CopySnapshot(Volume source, string snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap)
    {
        string from = SnapshotPath(source, snapshot);
        string to = Path.Combine(SnapshotsOf(target), snapshot);
        PoolDirs.CheckAbsent(to);
        Directory.CreateDirectory(SnapshotsOf(target));
        Btrfs.Snapshot(from, to, readOnly: true);
    }

    public void RenameVolume(Volume volume, string newName)
    {
        PoolDirs.Rename(PathOf(volume), Path.Combine(Volumes, newName));
        PoolDirs.Rename(SnapshotsOf(volume), Path.Combine(SnapshotsDir, newName));
    }

    /// <summary>A dot-named snapshot is a temporary one of the engine's (an export's), never listed; one a crash left is removed here.</summary>
    public void CreateSnapshot(Volume volume, string snapshot)
    {
        string path = Path.Combine(SnapshotsOf(volume), snapshot);
        if (Directory.Exists(path))
            throw EngineException.Conflict("SnapshotExists", $"container '{volume.Container}' already has a snapshot '{snapshot}'");
        Directory.CreateDirectory(SnapshotsOf(volume));
        foreach (var leftover in Directory.EnumerateDirectories(SnapshotsOf(volume), ".*")) Btrfs.Destroy(leftover);
        Btrfs.Snapshot(PathOf(volume), path, readOnly: true);
    }

    /// <summary>
    /// A writable snapshot of the snapshot is made beside the volume, then swapped in: the volume
    /// is never half restored, and the snapshot itself stays.
    /// </summary>
    public void RestoreSnapshot(Volume volume, string snapshot)
    {
        string source = SnapshotPath(volume, snapshot);
        string restoring = Path.Combine(Volumes, $".{volume.Container}.restoring");
        if (Directory.Exists(restoring)) Btrfs.Destroy(restoring);
        Btrfs.Snapshot(source, restoring, readOnly: false);
        string path = PathOf(volume);
        if (Directory.Exists(path)) Btrfs.Destroy(path);
        Directory.Move(restoring, path);
    }

    public void DeleteSnapshot(Volume volume, string snapshot) => Btrfs.Destroy(SnapshotPath(volume, snapshot));

    /// <summary>A subvolume is renamed like a directory: one rename(2), so a crash leaves it under one name or the other.</summary>
    public void RenameSnapshot(Volume volume, string snapshot, string newName)
    {
        string from = SnapshotPath(volume, snapshot);
        string to = Path.Combine(SnapshotsOf(volume), newName);
        if (Directory.Exists(to))
            throw EngineException.Conflict("SnapshotExists", $"container '{volume.Container}' already has a snapshot '{newName}'");
        Directory.Move(from, to);
    }

    public IReadOnlyList<SnapshotInfo> Snapshots(Volume volume)
    {
        string dir = SnapshotsOf(volume);
        if (!Directory.Exists(dir)) return [];
        return [.. new DirectoryInfo(dir).EnumerateDirectories().Where(d => !d.Name.StartsWith('.'))
            .Select(d => new SnapshotInfo(d.Name, d.CreationTimeUtc)).OrderBy(s => s.Created)];
    }

    private string SnapshotsOf(Volume volume) => Path.Combine(SnapshotsDir, volume.Container);

    private string SnapshotPath(Volume volume, string snapshot)
    {
        string path = Path.Combine(SnapshotsOf(volume), snapshot);
        return Directory.Exists(path) ? path
            : throw EngineException.NotFound("SnapshotNotFound", $"container '{volume.Container}' has no snapshot '{snapshot}'");
    }

    public string UsageTree(Volume volume) => PathOf(volume);

    public string? DirectRoot(Volume volume) => PathOf(volume);

    /// <summary>A receive the daemon died in may have made a volume's snapshots before the volume itself: those count too.</summary>
    public IReadOnlyList<string> VolumeNames() =>
        [.. PoolDirs.Names(Volumes).Union(Directory.Exists(SnapshotsDir) ? PoolDirs.Names(SnapshotsDir) : [], StringComparer.Ordinal)];

    private string PathOf(Volume volume) => Path.Combine(Volumes, volume.Container);

    /// <summary>
    /// The image's read-only subvolume: filled as a writable one under a dot name (a crash leaves
    /// only that, replaced next time), then snapshotted read-only to its fingerprint.
    /// </summary>
    private string ImageSubvolume(VolumeSource image)
    {
        string path = Path.Combine(Images, image.Fingerprint);
        lock (_imageLock)
        {
            if (Directory.Exists(path)) return path;
            string filling = Path.Combine(Images, $".{image.Fingerprint}.tmp");
            if (Directory.Exists(filling)) Btrfs.Destroy(filling);
            Btrfs.CreateSubvolume(filling);
            try
            {
                TreeCopy.CopyInto(image.Rootfs, filling);
                Btrfs.Snapshot(filling, path, readOnly: true);
            }
            finally
            {
                Btrfs.Destroy(filling);
            }
            return path;
        }
    }

    public bool LimitsRootSize => true;

    /// <summary>
    /// The limit of the volume's own qgroup (0/its subvolume id) on what it references, the image's
    /// extents it shares too, so the limit is the size of the root as the container sees it.
    /// Quotas are enabled on the pool's file system the first time a limit is set, and counted
    /// (a rescan) before it is.
    /// </summary>
    public void SetRootSize(Volume volume, long? bytes)
    {
        string path = PathOf(volume);
        if (!QuotasEnabled())
        {
            if (bytes is null) return;
            StorageTool.Run("/usr/bin/btrfs", ["btrfs", "quota", "enable", root], $"enable quotas on {root}");
            StorageTool.Run("/usr/bin/btrfs", ["btrfs", "quota", "rescan", "-w", root], $"count the quotas of {root}");
        }
        StorageTool.Run("/usr/bin/btrfs", ["btrfs", "qgroup", "limit", bytes?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none", path],
            $"set the root disk size of {path}");
    }

    private bool QuotasEnabled() => Sys.Run("/usr/bin/btrfs", ["btrfs", "qgroup", "show", root], "").ExitCode == 0;

    public IReadOnlyList<VolumeFormat> StreamFormats => [VolumeFormat.Tar, VolumeFormat.Btrfs];

    /// <summary>btrfs send reads only read-only subvolumes: the volume itself goes through a read-only snapshot made for the send.</summary>
    public async Task SendAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, string? parent, VolumeFormat format, Stream output, CancellationToken ct)
    {
        string source = snapshot is null ? PathOf(volume) : SnapshotPath(volume, snapshot);
        if (format == VolumeFormat.Tar)
        {
            if (parent is not null) throw EngineException.Invalid("StreamFormatUnsupported", "a tar volume stream is always whole: only a btrfs stream has a parent");
            await TreeTar.SendAsync(source, output, ct);
            return;
        }
        string? parentPath = parent is null ? null : SnapshotPath(volume, parent);
        string? sending = null;
        if (snapshot is null)
        {
            sending = Path.Combine(Volumes, $".{volume.Container}.send-{Guid.NewGuid():N}");
            Btrfs.Snapshot(source, sending, readOnly: true);
            source = sending;
        }
        try
        {
            await PipedTool.RunAsync("btrfs", parentPath is null ? ["send", "-q", source] : ["send", "-q", "-p", parentPath, source],
                null, output, $"send btrfs subvolume {source}", ct);
        }
        finally
        {
            if (sending is not null) Btrfs.Destroy(sending);
        }
    }

    public Task AddTreeAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, Images.TarballWriter tarball, string prefix, CancellationToken ct) =>
        TreeTar.AddMembersAsync(snapshot is null ? PathOf(volume) : SnapshotPath(volume, snapshot), tarball, m => m, prefix, ct);

    public Task ReceiveAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, VolumeFormat format, Stream input, ReceivePolicy policy, CancellationToken ct)
    {
        string target = snapshot is null ? PathOf(volume) : Path.Combine(SnapshotsOf(volume), snapshot);
        if (Directory.Exists(target))
            throw snapshot is null ? EngineException.Conflict("VolumeExists", $"volume {target} already exists")
                : EngineException.Conflict("SnapshotExists", $"container '{volume.Container}' already has a snapshot '{snapshot}'");
        if (snapshot is not null) Directory.CreateDirectory(SnapshotsOf(volume));
        return format == VolumeFormat.Tar ? Task.Run(() => ReceiveTar(volume, snapshot, target, input, policy, ct), ct)
            : ReceiveSendStreamAsync(snapshot, target, input, ct);
    }

    /// <summary>Into a new subvolume: the volume itself, or one made beside it and snapshotted read-only to the snapshot.</summary>
    private void ReceiveTar(Volume volume, string? snapshot, string target, Stream input, ReceivePolicy policy, CancellationToken ct)
    {
        string filling = snapshot is null ? target : Path.Combine(Volumes, $".{volume.Container}.receive-{snapshot}");
        if (snapshot is not null && Directory.Exists(filling)) Btrfs.Destroy(filling);
        Btrfs.CreateSubvolume(filling);
        try
        {
            TreeTar.Receive(input, filling, policy, ct);
            if (snapshot is not null) Btrfs.Snapshot(filling, target, readOnly: true);
        }
        catch
        {
            if (snapshot is null) Btrfs.Destroy(filling);
            throw;
        }
        finally
        {
            if (snapshot is not null) Btrfs.Destroy(filling);
        }
    }

    /// <summary>
    /// btrfs receive, confined (chroot) to the directory it receives into, makes one read-only
    /// subvolume, named as on the sender. A snapshot is received into the container's snapshot
    /// directory and renamed there (a read-only subvolume cannot move to another directory), so it
    /// keeps the received UUID a later incremental stream finds its parent by. The volume is
    /// received into a staging directory, made writable (which drops its received UUID: no later
    /// stream may take a tree that changes for its parent) and moved in place. Not a writable
    /// snapshot of it: a snapshot writes back all the stream wrote first, 4.8 s of a 1 GB
    /// volume's 7 s pull here, where the rest of the pull is done in memory.
    /// </summary>
    private async Task ReceiveSendStreamAsync(string? snapshot, string target, Stream input, CancellationToken ct)
    {
        string into = snapshot is null ? Path.Combine(Receiving, Guid.NewGuid().ToString("N")) : Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(into);
        var before = Directory.GetDirectories(into).ToHashSet(StringComparer.Ordinal);
        var made = new List<string>();
        bool received = false;
        try
        {
            try
            {
                await PipedTool.RunAsync("btrfs", ["receive", "-q", "-e", "-C", into], input, null, $"receive a btrfs stream into {target}", ct);
            }
            finally
            {
                made.AddRange(Directory.GetDirectories(into).Where(d => !before.Contains(d)));
            }
            if (made.Count != 1)
                throw EngineException.Invalid("InvalidStream", $"the btrfs stream for {target} made {made.Count} subvolumes, not one");
            if (snapshot is null)
                StorageTool.Run("/usr/bin/btrfs", ["btrfs", "property", "set", "-f", "-ts", made[0], "ro", "false"], $"make the received subvolume {made[0]} writable");
            if (made[0] != target) Directory.Move(made[0], target);
            received = true;
        }
        finally
        {
            if (snapshot is null) RemoveStaging(into);
            else if (!received) foreach (var subvolume in made) Btrfs.Destroy(subvolume);
        }
    }

    private static void RemoveStaging(string staging)
    {
        foreach (var subvolume in Directory.EnumerateDirectories(staging)) Btrfs.Destroy(subvolume);
        Directory.Delete(staging);
    }
}
