using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Snapshots of a container's volume, through its pool's driver: a running container is frozen
/// while its snapshot is taken, so the snapshot holds one moment of all its processes' writes; a
/// restore needs the container stopped. Each snapshot's creation time and expiry are kept beside
/// the container's record (SnapshotRecords), so they are the same for every driver.
/// </summary>
internal sealed class SnapshotContainer(EngineParts parts, FreezeContainer freezer)
{
    /// <summary>
    /// A snapshot named snapshot, or by the container's snapshots.pattern when none is given,
    /// expiring at expiresAt (never when null). Its record is written first: a crash before the
    /// snapshot exists leaves an entry the next snapshot of that name replaces.
    /// </summary>
    public SnapshotInfo Create(Container c, string? snapshot, DateTimeOffset? expiresAt)
    {
        var driver = parts.Storage.DriverOf(c.Record);
        var volume = parts.Storage.VolumeOf(c.Record);
        var taken = driver.Snapshots(volume).Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        string name = snapshot is { Length: > 0 } ? SnapshotName.Validate(snapshot)
            : c.Spec.Snapshots.Pattern.NextName(DateTime.Now, taken);
        if (taken.Contains(name))
            throw EngineException.Conflict("SnapshotExists", $"container '{c.Name}' already has a snapshot '{name}'");
        string dir = parts.Store.DirectoryOf(c.Name);
        var records = SnapshotRecords.Read(dir);
        var made = new SnapshotInfo(name, DateTimeOffset.UtcNow, expiresAt);
        records.With(name, new SnapshotRecord(made.Created, expiresAt)).Write(dir);
        try
        {
            freezer.Briefly(c, () => driver.CreateSnapshot(volume, name));
        }
        catch
        {
            records.Write(dir);
            throw;
        }
        return made;
    }

    public void Restore(Container c, string snapshot)
    {
        if (c.Live is not null)
            throw EngineException.Conflict("ContainerRunning", $"container '{c.Name}' is running; stop it before restoring snapshot '{snapshot}'");
        parts.Storage.DriverOf(c.Record).RestoreSnapshot(parts.Storage.VolumeOf(c.Record), SnapshotName.Validate(snapshot));
        // A btrfs restore makes a new subvolume, whose qgroup has no limit yet.
        if (c.Spec.Limits.DiskBytes is { } size) parts.Storage.SetRootSize(c.Record, parts.Store.DirectoryOf(c.Name), size);
    }

    public void Delete(Container c, string snapshot)
    {
        parts.Storage.DriverOf(c.Record).DeleteSnapshot(parts.Storage.VolumeOf(c.Record), SnapshotName.Validate(snapshot));
        string dir = parts.Store.DirectoryOf(c.Name);
        var records = SnapshotRecords.Read(dir);
        if (records.Of(snapshot) is not null) records.With(snapshot, null).Write(dir);
    }

    /// <summary>The record goes to the new name before the rename, so a crash between the two leaves it on whichever name the snapshot has.</summary>
    public SnapshotInfo Rename(Container c, string snapshot, string newName)
    {
        var driver = parts.Storage.DriverOf(c.Record);
        var volume = parts.Storage.VolumeOf(c.Record);
        string dir = parts.Store.DirectoryOf(c.Name);
        var records = SnapshotRecords.Read(dir);
        var record = records.Of(SnapshotName.Validate(snapshot));
        var taken = driver.Snapshots(volume);
        if (taken.Any(s => s.Name == SnapshotName.Validate(newName)))
            throw EngineException.Conflict("SnapshotExists", $"container '{c.Name}' already has a snapshot '{newName}'");
        var moved = records.With(newName, record);
        moved.Write(dir);
        try
        {
            driver.RenameSnapshot(volume, snapshot, newName);
        }
        catch
        {
            records.Write(dir);
            throw;
        }
        moved.With(snapshot, null).Write(dir);
        return moved.Over(taken.Where(s => s.Name == snapshot).Select(s => s with { Name = newName }))[0];
    }

    /// <summary>Refuses a bad snapshot name, or one the container has no snapshot of.</summary>
    internal static void CheckExists(StorageService storage, Container c, string snapshot)
    {
        SnapshotName.Validate(snapshot);
        if (!storage.DriverOf(c.Record).Snapshots(storage.VolumeOf(c.Record)).Any(s => s.Name == snapshot))
            throw EngineException.NotFound("SnapshotNotFound", $"container '{c.Name}' has no snapshot '{snapshot}'");
    }

    public IReadOnlyList<SnapshotInfo> List(Container c)
    {
        return SnapshotRecords.Read(parts.Store.DirectoryOf(c.Name)).Over(parts.Storage.DriverOf(c.Record).Snapshots(parts.Storage.VolumeOf(c.Record)));
    }
}
