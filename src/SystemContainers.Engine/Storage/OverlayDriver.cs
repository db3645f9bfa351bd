using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// The default pool, today's layout: each container an overlay upper layer (fs/upper, fs/work in
/// its state directory) over its image, which is attached idmapped (or through a shifted copy of
/// the image where idmapped mounts are unavailable) and stays unshifted and shared.
/// </summary>
internal sealed class OverlayDriver(string containersDir) : IStorageDriver
{
    public void CreatePool() { }

    public void ActivatePool() { }

    public void DeletePool() { }

    public string Root => containersDir;

    public void CreateVolume(Volume volume, VolumeSource image, IdMap? map)
    {
        string upper = Path.Combine(volume.ContainerDir, "fs", "upper");
        Directory.CreateDirectory(upper);
        Directory.CreateDirectory(Path.Combine(volume.ContainerDir, "fs", "work"));
        // Overlay writes the upper layer with the mounter's credentials, which an idmapped upper could not represent (EOVERFLOW).
        if (map is not null) Sys.Chown(upper, map.RootUid, map.RootGid);
    }

    public IReadOnlyList<RootMount> RootMounts(Volume volume, VolumeSource image, IdMap? map, bool shifted, RootTarget at)
    {
        string fs = Path.Combine(volume.ContainerDir, "fs");
        string lower = image.Rootfs;
        var mounts = new List<RootMount>();
        if (map is not null && shifted) lower = IdShifter.EnsureShifted(lower, map);
        else if (map is not null)
        {
            string idmapped = Path.Combine(at.Layers, "lower");
            mounts.Add(RootMount.Bind(lower, idmapped, idmap: true) with { Transient = true });
            lower = idmapped;
        }
        mounts.Add(new RootMount("overlay", "overlay", at.Target, $"lowerdir={lower},upperdir={fs}/upper,workdir={fs}/work"));
        return mounts;
    }

    public void DeleteVolume(Volume volume) { }

    /// <summary>The volume is in the state directory, which moves with the container.</summary>
    public void RenameVolume(Volume volume, string newName) { }

    public IReadOnlyList<string> VolumeNames() => [];

    public void CreateSnapshot(Volume volume, string snapshot) => throw PoolDirs.NoSnapshots("overlay");

    public void RestoreSnapshot(Volume volume, string snapshot) => throw PoolDirs.NoSnapshots("overlay");

    public void DeleteSnapshot(Volume volume, string snapshot) => throw PoolDirs.NoSnapshots("overlay");

    public void RenameSnapshot(Volume volume, string snapshot, string newName) => throw PoolDirs.NoSnapshots("overlay");

    public IReadOnlyList<SnapshotInfo> Snapshots(Volume volume) => [];

    public string UsageTree(Volume volume) => Path.Combine(volume.ContainerDir, "fs", "upper");

    public string? DirectRoot(Volume volume) => null;

    /// <summary>An overlay root is two layers with different owners on disk (the image's and the container's shifted ones): it has no stream yet.</summary>
    public IReadOnlyList<VolumeFormat> StreamFormats => [];

    public Task SendAsync(Volume volume, string? snapshot, string? parent, VolumeFormat format, Stream output, CancellationToken ct) =>
        throw PoolDirs.NoStreams("overlay");

    public Task ReceiveAsync(Volume volume, string? snapshot, VolumeFormat format, Stream input, ReceivePolicy policy, CancellationToken ct) =>
        throw PoolDirs.NoStreams("overlay");
}
