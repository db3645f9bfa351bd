using System.Text.Json;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.State;

/// <summary>
/// snapshots.json in a container's state directory: when each of its snapshots expires. It is
/// the engine's, not a driver's, so every pool's snapshots carry an expiry the same way, and it
/// moves with the state directory when the container is renamed and goes when it is deleted.
/// A snapshot with no entry never expires; an entry whose snapshot is gone is ignored, and
/// replaced when a snapshot of that name is made again.
/// </summary>
internal sealed record SnapshotExpiries(IReadOnlyDictionary<string, DateTimeOffset> ExpiresAt, int SchemaVersion = SnapshotExpiries.CurrentSchema)
{
    public const int CurrentSchema = 1;
    private const string FileName = "snapshots.json";

    public static SnapshotExpiries Read(string containerDir)
    {
        string path = Path.Combine(containerDir, FileName);
        return File.Exists(path) ? StateStore.Read<SnapshotExpiries>(path, CurrentSchema, r => r.SchemaVersion)
            : new SnapshotExpiries(new Dictionary<string, DateTimeOffset>());
    }

    public DateTimeOffset? Of(string snapshot) => ExpiresAt.TryGetValue(snapshot, out var at) ? at : null;

    /// <summary>A copy with the snapshot's expiry set, or removed when null.</summary>
    public SnapshotExpiries With(string snapshot, DateTimeOffset? at)
    {
        var all = new Dictionary<string, DateTimeOffset>(ExpiresAt, StringComparer.Ordinal);
        if (at is DateTimeOffset t) all[snapshot] = t;
        else all.Remove(snapshot);
        return this with { ExpiresAt = all };
    }

    /// <summary>Replaced atomically and durably, like config.json: an expiry lost in a crash would keep a snapshot for good.</summary>
    public void Write(string containerDir) =>
        Sys.WriteFileAtomic(Path.Combine(containerDir, FileName), JsonSerializer.SerializeToUtf8Bytes(this, StateStore.Json));
}
