using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Copies a container (or one of its snapshots) to a new one, as LXD's copy: the same image, config,
/// profiles, limits and devices, but a new identity: its own id, id map, MACs and host-side NIC
/// names, and no fixed address, which the source holds. A copy of the container carries its
/// snapshots (names, creation times, expiry), unless instanceOnly; a copy of a snapshot has none.
/// A stateful snapshot's processes stay with the source: the copy's snapshot holds its files, as
/// the processes' state names the source's ids and NICs. The snapshots are copied first, then the
/// volume, and a running source is frozen only while its volume is copied, so the copy holds one
/// moment of its writes; between pools each part streams from one driver to the other
/// (StorageService.CopyVolumeAsync). The copy is made like a create, in a staging directory moved
/// in place last: a daemon killed midway leaves a staging directory and a volume and snapshots no
/// container owns, all reclaimed at the next start.
/// </summary>
internal sealed class CopyContainer(EngineParts parts, NicDefaults nicDefaults, FreezeContainer freezer)
{
    /// <summary>The per-container NIC keys that are the source's own identity and are made anew for the copy.</summary>
    private static readonly string[] IdentityProperties = ["hwaddr", "host_name", "ipv4.address"];

    /// <summary>Runs under the source's gate, so the source is neither started, stopped nor removed meanwhile.</summary>
    public async Task<Container> RunAsync(Container source, string name, string? snapshot, string? storagePool, bool instanceOnly, CancellationToken ct)
    {
        ContainerName.Validate(name);
        var from = source.Record;
        if (snapshot is not null) SnapshotContainer.CheckExists(parts.Storage, source, snapshot);
        var raw = from.Config.Where(kv => !IsIdentity(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var parsed = nicDefaults.Complete(ContainerConfig.Parse(raw), firstConfig: false);
        foreach (var disk in parsed.Disks) disk.CheckSource();
        using var staged = StagedContainer.Claim(parts, name, parsed, idmap => new ContainerRecord(name, from.ImageFingerprint, from.ImageAlias,
            parsed.Raw, DateTimeOffset.UtcNow, idmap, from.InitKind, Guid.NewGuid()) { StoragePool = parts.Storage.Resolve(storagePool ?? from.StoragePool) });
        var carried = snapshot is null && !instanceOnly
            ? SnapshotRecords.Read(parts.Store.DirectoryOf(from.Name)).Over(parts.Storage.DriverOf(from).Snapshots(parts.Storage.VolumeOf(from)))
            : [];
        var target = staged.Container.Record;
        await parts.Storage.CopySnapshotsAsync(from, [.. carried.Select(s => s.Name)], target, staged.Dir, ct);
        await CopyVolumeAsync(source, snapshot, carried.Count > 0 ? carried[^1].Name : null, target, staged.Dir, ct);
        TestHooks.Reach("copy-volume-made");
        var times = new SnapshotRecords(new Dictionary<string, SnapshotRecord>());
        foreach (var s in carried) times = times.With(s.Name, new SnapshotRecord(s.Created, s.ExpiresAt));
        times.Write(staged.Dir);
        return staged.Commit("copy-staged");
    }

    private async Task CopyVolumeAsync(Container source, string? snapshot, string? parent, ContainerRecord target, string staging, CancellationToken ct)
    {
        if (snapshot is not null) await parts.Storage.CopyVolumeAsync(source.Record, snapshot, parent, target, staging, ct);
        else await freezer.BrieflyAsync(source, () => parts.Storage.CopyVolumeAsync(source.Record, snapshot, parent, target, staging, ct));
    }

    private static bool IsIdentity(string key) =>
        NicSpec.IsNicKey(key) && IdentityProperties.Any(p => key.EndsWith("." + p, StringComparison.Ordinal));
}
