using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Snapshots of a container's volume, through its pool's driver: a running container is frozen
/// while its snapshot is taken, so the snapshot holds one moment of all its processes' writes; a
/// restore needs the container stopped. Each snapshot's creation time and expiry are kept beside
/// the container's record (SnapshotRecords), so they are the same for every driver. A stateful
/// snapshot also keeps the processes' state (criu's images) in the container's state directory,
/// `snapshot-states/<snapshot>`, which moves and goes with the container and its snapshot.
/// </summary>
internal sealed class SnapshotContainer(EngineParts parts, FreezeContainer freezer, CheckpointContainer checkpoint)
{
    private const string StatesDir = "snapshot-states";

    /// <summary>
    /// A snapshot named snapshot, or by the container's snapshots.pattern when none is given,
    /// expiring at expiresAt (never when null). Its record is written first: a crash before the
    /// snapshot exists leaves an entry the next snapshot of that name replaces. Stateful, criu
    /// saves the running processes and the volume is snapshotted while criu holds them frozen.
    /// </summary>
    public SnapshotInfo Create(Container c, string? snapshot, DateTimeOffset? expiresAt, bool stateful = false)
    {
        var driver = parts.Storage.DriverOf(c.Record);
        var volume = parts.Storage.VolumeOf(c.Record);
        var taken = driver.Snapshots(volume).Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        string name = snapshot is { Length: > 0 } ? SnapshotName.Validate(snapshot)
            : c.Spec.Snapshots.Pattern.NextName(DateTime.Now, taken);
        if (taken.Contains(name))
            throw EngineException.Conflict("SnapshotExists", $"container '{c.Name}' already has a snapshot '{name}'");
        string dir = parts.Store.DirectoryOf(c.Name);
        // Images under a name no snapshot has are a crash's leftover between deleting a snapshot and
        // its images: they would make this one look stateful.
        if (Directory.Exists(StatesOf(c))) TreeRemover.Remove(StatesOf(c), name);
        if (stateful && c.Live is null)
            throw EngineException.Conflict("ContainerNotRunning",
                $"container '{c.Name}' is stopped: a stateful snapshot keeps the memory of running processes; start it, or take the snapshot without -Stateful");
        var records = SnapshotRecords.Read(dir);
        var made = new SnapshotInfo(name, DateTimeOffset.UtcNow, expiresAt, stateful);
        records.With(name, new SnapshotRecord(made.Created, expiresAt)).Write(dir);
        if (stateful)
        {
            CreateStateful(c, driver, volume, name, records);
            return made;
        }
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

    /// <summary>
    /// The images are staged under a dot name (never listed) and renamed in place once both they
    /// and the volume's snapshot exist; a failure removes both and the records' entry.
    /// </summary>
    private void CreateStateful(Container c, IStorageDriver driver, Volume volume, string name, SnapshotRecords before)
    {
        string states = StatesOf(c);
        Directory.CreateDirectory(states);
        string staging = Path.Combine(states, "." + name);
        TreeRemover.Remove(states, "." + name);
        bool taken = false;
        try
        {
            Directory.CreateDirectory(staging);
            checkpoint.SaveRunning(c, staging, () =>
            {
                driver.CreateSnapshot(volume, name);
                taken = true;
            });
            TreeRemover.Remove(states, name);
            Directory.Move(staging, Path.Combine(states, name));
        }
        catch
        {
            TreeRemover.Remove(states, "." + name);
            if (!Directory.EnumerateFileSystemEntries(states).Any()) Directory.Delete(states);
            if (taken) driver.DeleteSnapshot(volume, name);
            before.Write(parts.Store.DirectoryOf(c.Name));
            throw;
        }
    }

    /// <summary>
    /// Makes a stopped container's volume what the snapshot holds; a state saved by a stateful stop
    /// belongs to the files replaced, so it goes. Stateful, the snapshot's processes become the
    /// saved state, for the start that follows (ContainerService) to restore.
    /// </summary>
    public void Restore(Container c, string snapshot, bool stateful = false)
    {
        if (c.Live is not null)
            throw EngineException.Conflict("ContainerRunning", $"container '{c.Name}' is running; stop it before restoring snapshot '{snapshot}'");
        string state = Path.Combine(StatesOf(c), SnapshotName.Validate(snapshot));
        if (stateful && !Directory.Exists(state))
        {
            CheckExists(parts.Storage, c, snapshot);
            throw EngineException.Invalid("SnapshotNotStateful",
                $"snapshot '{snapshot}' of container '{c.Name}' holds no processes (it was taken without -Stateful); restore it without -Stateful");
        }
        parts.Storage.DriverOf(c.Record).RestoreSnapshot(parts.Storage.VolumeOf(c.Record), snapshot);
        CheckpointContainer.Discard(parts, c.Name);
        // A btrfs restore makes a new subvolume, whose qgroup has no limit yet.
        if (c.Spec.Limits.DiskBytes is { } size) parts.Storage.SetRootSize(c.Record, parts.Store.DirectoryOf(c.Name), size);
        if (stateful) CheckpointContainer.Stage(parts, c.Name, state);
    }

    public void Delete(Container c, string snapshot)
    {
        parts.Storage.DriverOf(c.Record).DeleteSnapshot(parts.Storage.VolumeOf(c.Record), SnapshotName.Validate(snapshot));
        if (Directory.Exists(StatesOf(c))) TreeRemover.Remove(StatesOf(c), snapshot);
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
        string state = Path.Combine(StatesOf(c), snapshot);
        if (Directory.Exists(state)) Directory.Move(state, Path.Combine(StatesOf(c), newName));
        moved.With(snapshot, null).Write(dir);
        return WithStates(c, moved.Over(taken.Where(s => s.Name == snapshot).Select(s => s with { Name = newName })))[0];
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
        return WithStates(c, SnapshotRecords.Read(parts.Store.DirectoryOf(c.Name)).Over(parts.Storage.DriverOf(c.Record).Snapshots(parts.Storage.VolumeOf(c.Record))));
    }

    private string StatesOf(Container c) => Path.Combine(parts.Store.DirectoryOf(c.Name), StatesDir);

    /// <summary>The snapshots with Stateful set where their processes' images are kept.</summary>
    private IReadOnlyList<SnapshotInfo> WithStates(Container c, IReadOnlyList<SnapshotInfo> snapshots) =>
        [.. snapshots.Select(s => s with { Stateful = Directory.Exists(Path.Combine(StatesOf(c), s.Name)) })];
}
