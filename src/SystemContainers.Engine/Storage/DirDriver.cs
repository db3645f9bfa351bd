using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A plain copy of the image per container (reflinked where the file system shares extents),
/// under &lt;root&gt;/containers/&lt;name&gt;, mounted idmapped: the copy keeps the image's
/// unshifted owners. Works on any file system; nothing is shared between containers. Snapshots
/// are tree copies of the volume under &lt;root&gt;/containers-snapshots/&lt;name&gt; (TreeSnapshots).
/// </summary>
internal sealed class DirDriver(string root, bool ownsRoot) : IStorageDriver
{
    private string Volumes => Path.Combine(root, "containers");
    private string SnapshotsDir => Path.Combine(root, "containers-snapshots");

    public string Root => root;

    public void CreatePool()
    {
        if (ownsRoot) PoolDirs.Make(root);
        else PoolDirs.CheckSource(root);
        PoolDirs.MakeNew(Volumes);
    }

    public void ActivatePool() => PoolDirs.CheckPresent(Volumes);

    public void DeletePool()
    {
        Directory.Delete(Volumes);
        if (Directory.Exists(SnapshotsDir)) Directory.Delete(SnapshotsDir);
        if (ownsRoot) Directory.Delete(root);
    }

    public void CreateVolume(Volume volume, VolumeSource image, IdMap? map)
    {
        string target = PathOf(volume);
        PoolDirs.CheckAbsent(target);
        TreeCopy.Copy(image.Rootfs, target);
    }

    public IReadOnlyList<RootMount> RootMounts(Volume volume, VolumeSource image, IdMap? map, bool shifted, RootTarget at) =>
        PoolDirs.IdmappedRoot("dir", PathOf(volume), map, shifted, at);

    public void DeleteVolume(Volume volume)
    {
        SnapshotsOf(volume).DeleteAll();
        TreeRemover.Remove(PathOf(volume));
    }

    /// <summary>A tree copy, reflinked where the file system shares extents; owners stay unshifted, so any id map fits.</summary>
    public void CopyVolume(Volume source, string? snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap)
    {
        string to = PathOf(target);
        PoolDirs.CheckAbsent(to);
        TreeCopy.Copy(snapshot is null ? PathOf(source) : SnapshotsOf(source).TreeOf(snapshot), to);
    }

    public void CopySnapshot(Volume source, string snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap) =>
        SnapshotsOf(target).Fill(snapshot, tree => TreeCopy.Copy(SnapshotsOf(source).TreeOf(snapshot), tree));

    public void RenameVolume(Volume volume, string newName)
    {
        PoolDirs.Rename(PathOf(volume), Path.Combine(Volumes, newName));
        SnapshotsOf(volume).MoveTo(Path.Combine(SnapshotsDir, newName));
    }

    public string UsageTree(Volume volume) => PathOf(volume);

    public string? DirectRoot(Volume volume) => PathOf(volume);

    /// <summary>A container's snapshots count too: an import cut short while receiving its first snapshot left them with no volume beside.</summary>
    public IReadOnlyList<string> VolumeNames() =>
        [.. PoolDirs.Names(Volumes).Union(Directory.Exists(SnapshotsDir) ? PoolDirs.Names(SnapshotsDir) : [], StringComparer.Ordinal)];

    public void CreateSnapshot(Volume volume, string snapshot) => SnapshotsOf(volume).Create(PathOf(volume), snapshot);

    public void RestoreSnapshot(Volume volume, string snapshot) => SnapshotsOf(volume).Restore(snapshot, PathOf(volume));

    public void DeleteSnapshot(Volume volume, string snapshot) => SnapshotsOf(volume).Delete(snapshot);

    public void RenameSnapshot(Volume volume, string snapshot, string newName) => SnapshotsOf(volume).Rename(snapshot, newName);

    public IReadOnlyList<SnapshotInfo> Snapshots(Volume volume) => SnapshotsOf(volume).List();

    private TreeSnapshots SnapshotsOf(Volume volume) => new(Path.Combine(SnapshotsDir, volume.Container), volume.Container);

    private string PathOf(Volume volume) => Path.Combine(Volumes, volume.Container);

    public bool LimitsRootSize => false;

    public void SetRootSize(Volume volume, long? bytes)
    {
        if (bytes is not null) throw PoolDirs.NoRootSize("dir");
    }

    public IReadOnlyList<VolumeFormat> StreamFormats => [VolumeFormat.Tar];

    public Task SendAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, string? parent, VolumeFormat format, Stream output, CancellationToken ct)
    {
        if (parent is not null) throw PoolDirs.NoIncremental("dir");
        if (format != VolumeFormat.Tar) throw PoolDirs.NoFormat("dir", format);
        return TreeTar.SendAsync(snapshot is null ? PathOf(volume) : SnapshotsOf(volume).TreeOf(snapshot), output, ct);
    }

    public Task AddTreeAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, Images.TarballWriter tarball, string prefix, CancellationToken ct) =>
        TreeTar.AddMembersAsync(snapshot is null ? PathOf(volume) : SnapshotsOf(volume).TreeOf(snapshot), tarball, m => m, prefix, ct);

    public Task ReceiveAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, VolumeFormat format, Stream input, ReceivePolicy policy, CancellationToken ct)
    {
        if (format != VolumeFormat.Tar) throw PoolDirs.NoFormat("dir", format);
        if (snapshot is not null)
            return Task.Run(() => SnapshotsOf(volume).Fill(snapshot, tree =>
            {
                PoolDirs.Make(tree);
                TreeTar.Receive(input, tree, policy, ct);
            }), ct);
        string target = PathOf(volume);
        PoolDirs.CheckAbsent(target);
        PoolDirs.Make(target);
        return Task.Run(() =>
        {
            try
            {
                TreeTar.Receive(input, target, policy, ct);
            }
            catch
            {
                TreeRemover.Remove(target);
                throw;
            }
        }, ct);
    }
}
