using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Copies a container (or one of its snapshots) to a new one, as LXD's copy: the same image, config,
/// profiles, limits and devices, but a new identity: its own id, id map, MACs and host-side NIC
/// names, and no fixed address, which the source holds. Snapshots are not copied. A running source
/// is frozen while its volume is copied, so the copy holds one moment of its writes; between pools
/// the volume streams from one driver to the other (StorageService.CopyVolumeAsync). The copy is
/// made like a create, in a staging directory moved in place last: a daemon killed midway leaves
/// a staging directory and a volume no container owns, both reclaimed at the next start.
/// </summary>
internal sealed class CopyContainer(EngineParts parts, NicDefaults nicDefaults, FreezeContainer freezer)
{
    /// <summary>The per-container NIC keys that are the source's own identity and are made anew for the copy.</summary>
    private static readonly string[] IdentityProperties = ["hwaddr", "host_name", "ipv4.address"];

    /// <summary>Runs under the source's gate, so the source is neither started, stopped nor removed meanwhile.</summary>
    public async Task<Container> RunAsync(Container source, string name, string? snapshot, string? storagePool, CancellationToken ct)
    {
        ContainerName.Validate(name);
        var from = source.Record;
        if (snapshot is not null) SnapshotContainer.CheckExists(parts.Storage, source, snapshot);
        var raw = from.Config.Where(kv => !IsIdentity(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var parsed = nicDefaults.Complete(ContainerConfig.Parse(raw), firstConfig: false);
        foreach (var disk in parsed.Disks) disk.CheckSource();
        using var staged = StagedContainer.Claim(parts, name, parsed, idmap => new ContainerRecord(name, from.ImageFingerprint, from.ImageAlias,
            parsed.Raw, DateTimeOffset.UtcNow, idmap, from.InitKind, Guid.NewGuid()) { StoragePool = parts.Storage.Resolve(storagePool ?? from.StoragePool) });
        await CopyVolumeAsync(source, snapshot, staged.Container.Record, staged.Dir, ct);
        TestHooks.Reach("copy-volume-made");
        return staged.Commit("copy-staged");
    }

    private async Task CopyVolumeAsync(Container source, string? snapshot, ContainerRecord target, string staging, CancellationToken ct)
    {
        if (snapshot is not null) await parts.Storage.CopyVolumeAsync(source.Record, snapshot, target, staging, ct);
        else await freezer.BrieflyAsync(source, () => parts.Storage.CopyVolumeAsync(source.Record, snapshot, target, staging, ct));
    }

    private static bool IsIdentity(string key) =>
        NicSpec.IsNicKey(key) && IdentityProperties.Any(p => key.EndsWith("." + p, StringComparison.Ordinal));
}
