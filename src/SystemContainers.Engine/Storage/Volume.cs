using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Storage;

/// <summary>A container's volume in a pool: the container it belongs to and its state directory (a staging one while it is made).</summary>
public sealed record Volume(string Container, string ContainerDir);

/// <summary>The image a volume is made from: its fingerprint and unpacked root file system.</summary>
public sealed record VolumeSource(string Fingerprint, string Rootfs);

/// <summary>
/// A read-only snapshot of a container's volume; ExpiresAt is the engine's (drivers leave it null),
/// when the sweep deletes it; Stateful (the engine's too) when it also holds the processes' state.
/// </summary>
public sealed record SnapshotInfo(string Name, DateTimeOffset Created, DateTimeOffset? ExpiresAt = null, bool Stateful = false);

/// <summary>A pool's file system: bytes free to its volumes and in all; Used is what its volumes hold.</summary>
public sealed record PoolSpace(long Used, long Free, long Total, string? UsedPartial);

/// <summary>
/// A storage driver: what a container's root is made of and how it is mounted. One instance per
/// pool; each verb is a method here beside the volume it acts on.
/// </summary>
public interface IStorageDriver
{
    /// <summary>The directory the pool's volumes live under; its file system's space is the pool's.</summary>
    string Root { get; }

    /// <summary>Makes the pool's files (directories, a loop file and its file system); undone by DeletePool.</summary>
    void CreatePool();

    /// <summary>Makes a created pool usable after a daemon start (mounts its loop file).</summary>
    void ActivatePool();

    /// <summary>Removes what CreatePool made; the pool holds no volume by then.</summary>
    void DeletePool();

    /// <summary>Makes a container's volume from an image; on failure nothing of it is left.</summary>
    void CreateVolume(Volume volume, VolumeSource image, IdMap? map);

    /// <summary>The mounts that make the container's root, for the launch plan; shifted when idmapped mounts are unavailable.</summary>
    IReadOnlyList<RootMount> RootMounts(Volume volume, VolumeSource image, IdMap? map, bool shifted, RootTarget at);

    /// <summary>
    /// The host directory that is the container's whole root with the container's own ids on disk
    /// (mounted idmapped at start), or null when the root is made of layers (overlay).
    /// </summary>
    string? DirectRoot(Volume volume);

    void DeleteVolume(Volume volume);

    /// <summary>
    /// Makes target's volume, in this pool, a copy of source's or of its snapshot: as cheap as the
    /// driver allows (a writable btrfs snapshot, a reflinked tree copy). The caller keeps the source
    /// still (frozen) meanwhile; on failure nothing of the target is left.
    /// </summary>
    void CopyVolume(Volume source, string? snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap);

    /// <summary>
    /// Gives target, in this pool, a snapshot of the same name that is a copy of source's (a copy
    /// carrying its source's snapshots), made before target's volume; on failure nothing of it is left.
    /// </summary>
    void CopySnapshot(Volume source, string snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap);

    /// <summary>Whether SetRootSize can limit a volume (btrfs: qgroups); others refuse limits.disk.</summary>
    bool LimitsRootSize { get; }

    /// <summary>Limits the volume to bytes (null: no limit), at once, mounted or not; a write past it fails with EDQUOT.</summary>
    void SetRootSize(Volume volume, long? bytes);

    /// <summary>Gives the volume, with its snapshots, to the container's new name; a part already moved (a rename resumed after a crash) is left as it is.</summary>
    void RenameVolume(Volume volume, string newName);

    /// <summary>A read-only snapshot of the volume as it is now; the caller keeps it still (frozen) meanwhile.</summary>
    void CreateSnapshot(Volume volume, string snapshot);

    /// <summary>Makes the volume what the snapshot holds; the container is stopped.</summary>
    void RestoreSnapshot(Volume volume, string snapshot);

    void DeleteSnapshot(Volume volume, string snapshot);

    /// <summary>Gives a snapshot a new name, in one step: it is there under one name or the other.</summary>
    void RenameSnapshot(Volume volume, string snapshot, string newName);

    IReadOnlyList<SnapshotInfo> Snapshots(Volume volume);

    /// <summary>The containers the pool holds volumes of, apart from their state directories (none for overlay, whose volumes are in them).</summary>
    IReadOnlyList<string> VolumeNames();

    /// <summary>The tree whose file sizes are the container's disk usage.</summary>
    string UsageTree(Volume volume);

    // Streams: a volume or one of its snapshots as bytes, for backups now and for copies between
    // hosts and migration later, so they never pass through a temporary file.

    /// <summary>The formats the driver sends and receives: Tar, which every driver has, first.</summary>
    IReadOnlyList<VolumeFormat> StreamFormats { get; }

    /// <summary>
    /// Writes the volume (snapshot null) or one of its snapshots to output in format; with parent
    /// (another snapshot, btrfs only) the stream holds only what changed since it. The container is
    /// stopped; image and map are what the volume was made with (CreateVolume).
    /// </summary>
    Task SendAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, string? parent, VolumeFormat format, Stream output, CancellationToken ct);

    /// <summary>
    /// Adds the members of the volume's (snapshot null) or a snapshot's tar stream to tarball, each
    /// named prefix + its path in the root (the root itself prefix), hardlinks' targets too: a
    /// backup's tree, rewritten once on its way in. As for SendAsync, the container is stopped.
    /// </summary>
    Task AddTreeAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, Images.TarballWriter tarball, string prefix, CancellationToken ct);

    /// <summary>
    /// Makes the volume (snapshot null; it must not exist) or a new read-only snapshot of it from
    /// input; a tar stream is checked against policy as it is unpacked. On failure nothing of what
    /// this call made is left; a btrfs stream's parent must have been received into this pool.
    /// </summary>
    Task ReceiveAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, VolumeFormat format, Stream input, ReceivePolicy policy, CancellationToken ct);
}
