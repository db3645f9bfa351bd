using SystemContainers.Engine.Storage;
using System.Text.Json;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.State;

/// <summary>When a snapshot was made and when it expires (null: never).</summary>
internal sealed record SnapshotRecord(DateTimeOffset Created, DateTimeOffset? ExpiresAt);

/// <summary>
/// snapshots.json in a container's state directory: each snapshot's creation time and expiry.
/// They are the engine's, not a driver's, so every pool's snapshots carry them the same way (a
/// btrfs snapshot's root directory keeps the birth time of the volume it was taken of, so the
/// file system cannot say when the snapshot was made); the file moves with the state directory
/// when the container is renamed and goes when it is deleted. A snapshot with no entry (made
/// before this file existed) never expires and shows its driver's time; an entry whose snapshot
/// is gone is ignored, and replaced when a snapshot of that name is made again.
/// </summary>
internal sealed record SnapshotRecords(IReadOnlyDictionary<string, SnapshotRecord> Snapshots, int SchemaVersion = SnapshotRecords.CurrentSchema)
{
    public const int CurrentSchema = 1;
    private const string FileName = "snapshots.json";

    public static SnapshotRecords Read(string containerDir)
    {
        string path = Path.Combine(containerDir, FileName);
        return File.Exists(path) ? StateStore.Read<SnapshotRecords>(path, CurrentSchema, r => r.SchemaVersion)
            : new SnapshotRecords(new Dictionary<string, SnapshotRecord>());
    }

    public SnapshotRecord? Of(string snapshot) => Snapshots.TryGetValue(snapshot, out var r) ? r : null;

    /// <summary>The driver's snapshots with the times recorded here, oldest first.</summary>
    public IReadOnlyList<SnapshotInfo> Over(IEnumerable<SnapshotInfo> snapshots) =>
        [.. snapshots.Select(s => Of(s.Name) is { } r ? s with { Created = r.Created, ExpiresAt = r.ExpiresAt } : s).OrderBy(s => s.Created)];

    /// <summary>A copy with the snapshot's entry set, or removed when null.</summary>
    public SnapshotRecords With(string snapshot, SnapshotRecord? record)
    {
        var all = new Dictionary<string, SnapshotRecord>(Snapshots, StringComparer.Ordinal);
        if (record is not null) all[snapshot] = record;
        else all.Remove(snapshot);
        return this with { Snapshots = all };
    }

    /// <summary>
    /// Replaced atomically and durably, like config.json: an expiry lost in a crash would keep a
    /// snapshot for good. No entries is no file, so a refused snapshot leaves nothing behind.
    /// </summary>
    public void Write(string containerDir)
    {
        string path = Path.Combine(containerDir, FileName);
        if (Snapshots.Count == 0) File.Delete(path);
        else Sys.WriteFileAtomic(path, JsonSerializer.SerializeToUtf8Bytes(this, StateStore.Json));
    }
}
