using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// The default pool, today's layout: each container an overlay upper layer (fs/upper, fs/work in
/// its state directory) over its image, which is attached idmapped (or through a shifted copy of
/// the image where idmapped mounts are unavailable) and stays unshifted and shared. Snapshots are
/// tree copies of the upper layer in the state directory, snapshots/&lt;name&gt; (TreeSnapshots),
/// so they move and go with it.
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

    /// <summary>
    /// A copy of the upper layer only, over the same image. The upper holds host ids (overlay
    /// writes it with the mounter's credentials), so a copy with another id map is shifted into it.
    /// </summary>
    public void CopyVolume(Volume source, string? snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap)
    {
        string fs = Path.Combine(target.ContainerDir, "fs");
        string upper = Path.Combine(fs, "upper");
        Directory.CreateDirectory(fs);
        TreeCopy.Copy(snapshot is null ? UsageTree(source) : SnapshotsOf(source).TreeOf(snapshot), upper);
        Directory.CreateDirectory(Path.Combine(fs, "work"));
        if (targetMap is not null && targetMap != sourceMap) IdShifter.Reshift(upper, sourceMap, targetMap);
    }

    /// <summary>A copy of the snapshot's upper layer, shifted as CopyVolume shifts the volume's.</summary>
    public void CopySnapshot(Volume source, string snapshot, Volume target, IdMap? sourceMap, IdMap? targetMap) =>
        SnapshotsOf(target).Fill(snapshot, tree =>
        {
            TreeCopy.Copy(SnapshotsOf(source).TreeOf(snapshot), tree);
            if (targetMap is not null && targetMap != sourceMap) IdShifter.Reshift(tree, sourceMap, targetMap);
        });

    /// <summary>The volume is in the state directory, which moves with the container.</summary>
    public void RenameVolume(Volume volume, string newName) { }

    public IReadOnlyList<string> VolumeNames() => [];

    public void CreateSnapshot(Volume volume, string snapshot) => SnapshotsOf(volume).Create(UsageTree(volume), snapshot);

    /// <summary>The upper layer is swapped for a copy of the snapshot's; the work directory overlay empties at its next mount.</summary>
    public void RestoreSnapshot(Volume volume, string snapshot) => SnapshotsOf(volume).Restore(snapshot, UsageTree(volume));

    public void DeleteSnapshot(Volume volume, string snapshot) => SnapshotsOf(volume).Delete(snapshot);

    public void RenameSnapshot(Volume volume, string snapshot, string newName) => SnapshotsOf(volume).Rename(snapshot, newName);

    public IReadOnlyList<SnapshotInfo> Snapshots(Volume volume) => SnapshotsOf(volume).List();

    private static TreeSnapshots SnapshotsOf(Volume volume) => new(Path.Combine(volume.ContainerDir, "snapshots"), volume.Container);

    public string UsageTree(Volume volume) => Path.Combine(volume.ContainerDir, "fs", "upper");

    public string? DirectRoot(Volume volume) => null;

    public bool LimitsRootSize => false;

    public void SetRootSize(Volume volume, long? bytes)
    {
        if (bytes is not null) throw PoolDirs.NoRootSize("overlay");
    }

    public IReadOnlyList<VolumeFormat> StreamFormats => [VolumeFormat.Tar];

    /// <summary>
    /// The merged root is read through a read-only overlay of the upper layer over the image, made
    /// as a detached mount (fsmount) that goes away with its fd, so even a crash leaves no mount.
    /// The upper layer holds the container's shifted ids and the image its own: every owner in the
    /// container's host range is shifted back as the members pass, so the stream holds own ids only.
    /// </summary>
    public async Task SendAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, string? parent, VolumeFormat format, Stream output,
        CancellationToken ct)
    {
        if (parent is not null) throw PoolDirs.NoIncremental("overlay");
        if (format != VolumeFormat.Tar) throw PoolDirs.NoFormat("overlay", format);
        await ReadMergedAsync(volume, image, snapshot, async tree =>
        {
            if (map is null)
            {
                await TreeTar.SendAsync(tree, output, ct);
                return;
            }
            var writer = new TarballWriter(output);
            await TreeTar.AddMembersAsync(tree, writer, Owned(map), null, ct);
            writer.Finish();
        });
    }

    /// <summary>The merged root's members, shifted back to the container's own ids and renamed in the same pass.</summary>
    public Task AddTreeAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, TarballWriter tarball, string prefix, CancellationToken ct) =>
        ReadMergedAsync(volume, image, snapshot, tree =>
            TreeTar.AddMembersAsync(tree, tarball, map is null ? m => m : Owned(map), prefix, ct));

    private async Task ReadMergedAsync(Volume volume, VolumeSource image, string? snapshot, Func<string, Task> read)
    {
        string upper = snapshot is null ? UsageTree(volume) : SnapshotsOf(volume).TreeOf(snapshot);
        using var merged = DetachedOverlay.Mount($"{upper}:{image.Rootfs}", volume.Container);
        TestHooks.Reach("overlay-send-mounted");
        await read($"/proc/{Environment.ProcessId}/fd/{merged.Fd}");
    }

    private static Func<TarMember, TarMember> Owned(IdMap map) =>
        m => m with { Uid = Own(m.Uid, map.UidBase, map.Size), Gid = Own(m.Gid, map.GidBase, map.Size) };

    /// <summary>
    /// The whole tree goes into a new upper layer, over the image it names (which must be on this
    /// daemon): whatever the image has that the tree does not is whited out, so the merged root is
    /// the tree alone. Owners are shifted into the container's host range as they are written, as the upper holds them.
    /// </summary>
    public Task ReceiveAsync(Volume volume, VolumeSource image, IdMap? map, string? snapshot, VolumeFormat format, Stream input, ReceivePolicy policy,
        CancellationToken ct)
    {
        if (format != VolumeFormat.Tar) throw PoolDirs.NoFormat("overlay", format);
        if (!Directory.Exists(image.Rootfs))
            throw EngineException.NotFound("ImageNotFound",
                $"an overlay root is layered on its image, and image {image.Fingerprint} is not on this daemon; import the image first, or import into a dir or btrfs pool");
        if (snapshot is not null)
            return Task.Run(() => SnapshotsOf(volume).Fill(snapshot, tree =>
            {
                Directory.CreateDirectory(tree);
                TreeTar.Receive(input, tree, policy, ct, map);
                Whiteouts.Add(image.Rootfs, tree);
            }), ct);
        string fs = Path.Combine(volume.ContainerDir, "fs");
        string upper = Path.Combine(fs, "upper");
        PoolDirs.CheckAbsent(fs);
        return Task.Run(() =>
        {
            try
            {
                Directory.CreateDirectory(upper);
                Directory.CreateDirectory(Path.Combine(fs, "work"));
                TreeTar.Receive(input, upper, policy, ct, map);
                Whiteouts.Add(image.Rootfs, upper);
            }
            catch
            {
                TreeRemover.Remove(fs);
                throw;
            }
        }, ct);
    }

    private static long Own(long id, long hostBase, long size) => id >= hostBase && id < hostBase + size ? id - hostBase : id;
}
