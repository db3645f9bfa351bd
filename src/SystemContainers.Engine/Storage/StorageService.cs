using System.Text.Json;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Storage;

/// <summary>A pool as listed: its record, the containers on it, the bytes their volumes hold and its file system's space; Error says why it is unusable.</summary>
public sealed record StoragePoolView(
    StoragePool Pool,
    IReadOnlyList<string> UsedBy,
    long UsedBytes,
    string? UsedPartial,
    long FreeBytes,
    long TotalBytes,
    string? Error);

/// <summary>
/// The storage pools and their drivers: the built-in default pool (overlay, today's layout, so
/// containers made before pools existed need nothing moved) and the pools made since, one record
/// file each under &lt;state&gt;/storage-pools. A pool is removed only when no container uses it,
/// checked under the same lock that claims a new container's name and pool.
/// </summary>
public sealed class StorageService
{
    private sealed record Entry(StoragePool Pool, IStorageDriver Driver, string? Error);

    private readonly object _lock = new();
    private readonly Dictionary<string, Entry> _pools = new(StringComparer.Ordinal);
    private readonly string _dir;
    private readonly string _disks;
    private readonly StateStore _store;
    private readonly ImageStore _images;
    private readonly Func<string, IReadOnlyList<string>> _usersOf;
    private readonly object _claimLock;

    internal StorageService(EngineOptions options, StateStore store, ImageStore images, Func<string, IReadOnlyList<string>> usersOf, object claimLock)
    {
        _store = store;
        _images = images;
        _usersOf = usersOf;
        _claimLock = claimLock;
        _dir = Path.Combine(options.StateDir, "storage-pools");
        _disks = Path.Combine(options.StateDir, "disks");
        PoolDirs.Make(_dir);
        Recovery.ReclaimTempFiles(_dir);
        var builtIn = new StoragePool(StoragePool.DefaultName, "overlay", store.ContainersDir, new Dictionary<string, string>(),
            Directory.GetCreationTimeUtc(store.ContainersDir));
        _pools[builtIn.Name] = new(builtIn, new OverlayDriver(store.ContainersDir), null);
        foreach (var file in Directory.EnumerateFiles(_dir, "*.json"))
        {
            var pool = StateStore.Read<StoragePool>(file, StoragePool.CurrentSchema, p => p.SchemaVersion);
            var driver = DriverFor(pool);
            string? error = null;
            try { driver.ActivatePool(); }
            catch (Exception e) when (e is EngineException or NativeException or IOException)
            {
                error = $"cannot activate storage pool '{pool.Name}': {e.Message}";
                EngineLog.Write(error);
            }
            _pools[pool.Name] = new(pool, driver, error);
        }
    }

    public IReadOnlyList<StoragePoolView> List()
    {
        List<Entry> all;
        lock (_lock) all = [.. _pools.Values];
        return all.OrderBy(e => e.Pool.Name, StringComparer.Ordinal).Select(View).ToList();
    }

    public StoragePoolView Get(string name) => View(Find(name));

    public StoragePoolView Create(string name, string driver, string? source, IReadOnlyDictionary<string, string>? config)
    {
        StoragePoolName.Validate(name);
        if (!StoragePool.Drivers.Contains(driver))
            throw EngineException.Invalid("UnknownDriver", $"unknown storage driver '{Spec.DisplayText.Escape(driver)}': use dir or btrfs");
        if (driver == "overlay")
            throw EngineException.Invalid("UnknownDriver", "the overlay driver backs only the default pool: use dir or btrfs");
        var settings = new Dictionary<string, string>(config ?? new Dictionary<string, string>(), StringComparer.Ordinal);
        foreach (var key in settings.Keys.Where(k => !StoragePool.Keys.Contains(k)))
            throw EngineException.Invalid("InvalidConfig", $"unknown storage pool config key '{Spec.DisplayText.Escape(key)}' (known: {string.Join(", ", StoragePool.Keys)})");
        if (!string.IsNullOrEmpty(source) && !Path.IsPathRooted(source))
            throw EngineException.Invalid("InvalidPoolSource", $"pool source '{Spec.DisplayText.Escape(source)}' must be an absolute path");
        string resolved = string.IsNullOrEmpty(source) ? "" : Path.GetFullPath(source).TrimEnd('/');
        bool loop = driver == "btrfs" && !Directory.Exists(resolved);
        if (loop)
        {
            if (resolved == "") resolved = Directory.CreateDirectory(_disks).FullName + $"/{name}.img";
            else if (!Directory.Exists(Path.GetDirectoryName(resolved)))
                throw EngineException.Invalid("InvalidPoolSource", $"pool source {resolved} is neither an existing directory nor a file in one");
            long size = settings.TryGetValue("size", out var text) ? ByteSize.Parse("size", text) : LoopFile.DefaultSize(resolved);
            settings["size"] = size.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        else if (settings.ContainsKey("size"))
            throw EngineException.Invalid("InvalidConfig", $"size applies only to a btrfs pool on a loop file it makes; {(driver == "dir" ? "a dir pool" : "a btrfs directory")} takes the space of its file system");
        if (driver == "dir" && resolved == "") resolved = Path.Combine(_dir, name);
        var pool = new StoragePool(name, driver, resolved, settings, DateTimeOffset.UtcNow) { Loop = loop };
        var made = DriverFor(pool);
        lock (_lock)
        {
            if (_pools.ContainsKey(name)) throw EngineException.Conflict("PoolExists", $"storage pool '{name}' already exists");
            made.CreatePool();
            try
            {
                Write(pool);
            }
            catch
            {
                made.DeletePool();
                throw;
            }
            _pools[name] = new(pool, made, null);
        }
        return Get(name);
    }

    /// <summary>Changes config keys (a null or empty value removes one); only the description can change after a pool is made.</summary>
    public StoragePoolView Update(string name, IReadOnlyDictionary<string, string?> changes)
    {
        lock (_lock)
        {
            var entry = Find(name);
            if (entry.Pool.Name == StoragePool.DefaultName)
                throw EngineException.Invalid("DefaultPool", "the default storage pool has no config to change");
            var config = new Dictionary<string, string>(entry.Pool.Config, StringComparer.Ordinal);
            foreach (var (key, value) in changes)
            {
                if (key != "description")
                    throw EngineException.Invalid("InvalidConfig", StoragePool.Keys.Contains(key)
                        ? $"{key} of storage pool '{name}' cannot change once it is made"
                        : $"unknown storage pool config key '{Spec.DisplayText.Escape(key)}' (known: {string.Join(", ", StoragePool.Keys)})");
                if (string.IsNullOrEmpty(value)) config.Remove(key);
                else config[key] = value;
            }
            var updated = entry.Pool with { Config = config };
            Write(updated);
            _pools[name] = entry with { Pool = updated };
        }
        return Get(name);
    }

    public void Delete(string name)
    {
        lock (_claimLock)
        lock (_lock)
        {
            var entry = Find(name);
            if (entry.Pool.Name == StoragePool.DefaultName)
                throw EngineException.Conflict("DefaultPool", "the default storage pool cannot be removed");
            var users = _usersOf(name);
            if (users.Count > 0)
                throw EngineException.Conflict("PoolInUse", $"storage pool '{name}' is used by container(s) {string.Join(", ", users)}; remove them first");
            entry.Driver.DeletePool();
            File.Delete(RecordPath(name));
            _pools.Remove(name);
        }
    }

    /// <summary>
    /// The mounts that make a container's root file system at at.Target, from its pool's driver:
    /// the one place that knows what a container's root is, for a start's launch plan and for
    /// anything that needs a stopped container's root as a mount.
    /// </summary>
    public IReadOnlyList<RootMount> RootMountsOf(ContainerRecord record, RootTarget at, bool shifted) => RootMountsOf(record, VolumeOf(record), at, shifted);

    /// <summary>The same of a volume not yet in place (a new container's, in its staging directory).</summary>
    internal IReadOnlyList<RootMount> RootMountsOf(ContainerRecord record, Volume volume, RootTarget at, bool shifted) =>
        Usable(record.StoragePool).RootMounts(volume, SourceOf(record), record.IdMap, shifted, at);

    /// <summary>The pool a new container goes to, resolved under the create's claim lock so a pool being removed is not chosen.</summary>
    internal string Resolve(string? pool)
    {
        string name = string.IsNullOrEmpty(pool) ? StoragePool.DefaultName : pool;
        Usable(name);
        return name;
    }

    internal void CreateVolume(ContainerRecord record, string containerDir) =>
        Usable(record.StoragePool).CreateVolume(new Volume(record.Name, containerDir), SourceOf(record), record.IdMap);

    /// <summary>
    /// Gives target (target's pool, staging directory targetDir) copies of source's snapshots,
    /// oldest first, made before its volume (CopyVolumeAsync, whose btrfs stream may be
    /// incremental from the last of them). The snapshots are read-only, so the source needs no freeze.
    /// </summary>
    internal async Task CopySnapshotsAsync(ContainerRecord source, IReadOnlyList<string> snapshots, ContainerRecord target, string targetDir, CancellationToken ct)
    {
        string? parent = null;
        foreach (var snapshot in snapshots)
        {
            await CopyAsync(source, snapshot, asSnapshot: true, parent, target, targetDir, ct);
            TestHooks.Reach("copy-snapshot-made");
            parent = snapshot;
        }
    }

    /// <summary>
    /// Makes target's volume (target's pool, staging directory targetDir) a copy of source's or of
    /// its snapshot; parent is target's last snapshot copied, if any (CopySnapshotsAsync).
    /// </summary>
    internal Task CopyVolumeAsync(ContainerRecord source, string? snapshot, string? parent, ContainerRecord target, string targetDir, CancellationToken ct) =>
        CopyAsync(source, snapshot, asSnapshot: false, parent, target, targetDir, ct);

    /// <summary>
    /// One part of a copy, the volume or (asSnapshot) the snapshot of that name: within a pool the
    /// pool's own copy (a snapshot, a reflinked tree, an upper layer); between pools the source
    /// driver's stream received by the target's, as a backup is, so any pool receives from any
    /// other, the overlay pool too. Between btrfs pools it is a btrfs send stream, incremental from
    /// parent, which the target holds already; otherwise a tar stream.
    /// </summary>
    private async Task CopyAsync(ContainerRecord source, string? snapshot, bool asSnapshot, string? parent, ContainerRecord target, string targetDir,
        CancellationToken ct)
    {
        var from = Usable(source.StoragePool);
        var to = Usable(target.StoragePool);
        var targetVolume = new Volume(target.Name, targetDir);
        if ((source.StoragePool ?? StoragePool.DefaultName) == (target.StoragePool ?? StoragePool.DefaultName))
        {
            if (asSnapshot) from.CopySnapshot(VolumeOf(source), snapshot!, targetVolume, source.IdMap, target.IdMap);
            else from.CopyVolume(VolumeOf(source), snapshot, targetVolume, source.IdMap, target.IdMap);
            return;
        }
        var format = from.StreamFormats.Contains(VolumeFormat.Btrfs) && to.StreamFormats.Contains(VolumeFormat.Btrfs) ? VolumeFormat.Btrfs : VolumeFormat.Tar;
        string? since = format == VolumeFormat.Btrfs ? parent : null;
        // The stream is the daemon's own, of a container of this host: its fifos are kept, and it may fill the target's file system.
        var policy = new ReceivePolicy(new ImportLimits(Math.Max(0, FsStat.Of(to.Root).Free), long.MaxValue), target.IdMap?.Size ?? IdMap.DefaultSize, Fifos: true);
        await StreamPipe.RunAsync((s, token) => from.SendAsync(VolumeOf(source), SourceOf(source), source.IdMap, snapshot, since, format, s, token),
            (s, token) => to.ReceiveAsync(targetVolume, SourceOf(target), target.IdMap, asSnapshot ? snapshot : null, format, s, policy, token), ct);
    }

    /// <summary>
    /// Writes the container's root (or its snapshot's) as an image tarball in scratch: its driver's
    /// tar stream, which holds the container's own ids. Returns the tarball's path.
    /// </summary>
    internal async Task<string> WriteRootTarballAsync(ContainerRecord record, string? snapshot, string scratch, CancellationToken ct)
    {
        string tarball = Path.Combine(scratch, "rootfs.tar");
        await using var file = new FileStream(tarball, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 1 << 20, Options = FileOptions.Asynchronous,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        await Usable(record.StoragePool).SendAsync(VolumeOf(record), SourceOf(record), record.IdMap, snapshot, null, VolumeFormat.Tar, file, ct);
        return tarball;
    }

    /// <summary>Refuses limits.disk (bytes) for a container of a pool whose driver cannot enforce it, before anything is made or changed.</summary>
    internal void CheckRootSize(ContainerRecord record, long? bytes)
    {
        var entry = Find(record.StoragePool ?? StoragePool.DefaultName);
        if (bytes is not null && !entry.Driver.LimitsRootSize)
            throw EngineException.Invalid("DiskLimitUnsupported",
                $"container '{record.Name}' is in storage pool '{entry.Pool.Name}' ({entry.Pool.Driver}), which cannot enforce limits.disk (a root disk size); use a btrfs pool");
    }

    /// <summary>Limits the volume of the container (state directory containerDir) to bytes, or lifts its limit (null).</summary>
    internal void SetRootSize(ContainerRecord record, string containerDir, long? bytes) =>
        Usable(record.StoragePool).SetRootSize(new Volume(record.Name, containerDir), bytes);

    internal IStorageDriver DriverOf(ContainerRecord record) => Usable(record.StoragePool);

    internal IStorageDriver DriverOf(string pool) => Usable(pool);

    internal VolumeSource SourceOf(string fingerprint) => new(fingerprint, _images.RootfsOf(fingerprint));

    internal Volume VolumeOf(ContainerRecord record) => new(record.Name, _store.DirectoryOf(record.Name));

    internal void DeleteVolume(ContainerRecord record, string containerDir) =>
        Usable(record.StoragePool).DeleteVolume(new Volume(record.Name, containerDir));

    internal void RenameVolume(ContainerRecord record, string newName) =>
        Usable(record.StoragePool).RenameVolume(VolumeOf(record), newName);

    /// <summary>
    /// Daemon start, once the containers are loaded: removes the volumes no container owns, which
    /// a create or a delete the daemon died in left behind, so their names can be used again.
    /// </summary>
    internal void ReclaimOrphans(ICollection<string> owned)
    {
        List<Entry> usable;
        lock (_lock) usable = [.. _pools.Values.Where(e => e.Error is null)];
        foreach (var e in usable)
        foreach (var name in e.Driver.VolumeNames().Where(n => !owned.Contains(n)))
        {
            EngineLog.Write($"removing volume '{name}' of storage pool '{e.Pool.Name}': no container owns it");
            try { e.Driver.DeleteVolume(new Volume(name, _store.DirectoryOf(name))); }
            catch (Exception x) when (x is EngineException or NativeException or IOException)
            {
                EngineLog.Write($"cannot remove volume '{name}' of storage pool '{e.Pool.Name}': {x.Message}");
            }
        }
    }

    /// <summary>The container's root as one host directory holding its own ids (see IStorageDriver.DirectRoot), or null.</summary>
    internal string? DirectRootOf(ContainerRecord record) => DirectRootOf(record, VolumeOf(record));

    internal string? DirectRootOf(ContainerRecord record, Volume volume) => Usable(record.StoragePool).DirectRoot(volume);

    internal string UsageTreeOf(ContainerRecord record) =>
        Find(record.StoragePool ?? StoragePool.DefaultName).Driver.UsageTree(VolumeOf(record));

    private IStorageDriver Usable(string? pool)
    {
        var entry = Find(pool ?? StoragePool.DefaultName);
        if (entry.Error is not null) throw new EngineException(FailureKind.Failed, "PoolUnavailable", entry.Error);
        return entry.Driver;
    }

    internal VolumeSource SourceOf(ContainerRecord record) => SourceOf(record.ImageFingerprint);

    private Entry Find(string name)
    {
        lock (_lock)
            return _pools.TryGetValue(name, out var e) ? e
                : throw EngineException.NotFound("PoolNotFound", $"storage pool '{Spec.DisplayText.Escape(name)}' not found");
    }

    private StoragePoolView View(Entry e)
    {
        var users = _usersOf(e.Pool.Name);
        long used = 0, free = 0, total = 0;
        string? partial = null, error = e.Error;
        foreach (var user in users)
        {
            var usage = TreeUsage.Measure(e.Driver.UsageTree(new Volume(user, _store.DirectoryOf(user))), TreeUsage.DefaultMaxEntries, TreeUsage.DefaultBudget);
            used += usage.Bytes;
            partial ??= usage.Partial;
        }
        try { (_, free, total) = FsStat.Of(e.Driver.Root); }
        catch (NativeException x) { error ??= x.Message; }
        return new StoragePoolView(e.Pool, users, used, partial, free, total, error);
    }

    private IStorageDriver DriverFor(StoragePool pool) => pool.Driver switch
    {
        "dir" => new DirDriver(pool.Source, ownsRoot: pool.Source == Path.Combine(_dir, pool.Name)),
        "btrfs" => pool.Loop
            ? new BtrfsDriver(Path.Combine(_dir, pool.Name), pool.Source, long.Parse(pool.Config["size"], System.Globalization.CultureInfo.InvariantCulture))
            : new BtrfsDriver(pool.Source, null, 0),
        _ => throw new EngineException(FailureKind.Conflict, "DamagedState", $"storage pool '{pool.Name}' has driver '{pool.Driver}', which this daemon does not have"),
    };

    private string RecordPath(string name) => Path.Combine(_dir, $"{name}.json");

    private void Write(StoragePool pool) =>
        Sys.WriteFileAtomic(RecordPath(pool.Name), JsonSerializer.SerializeToUtf8Bytes(pool, StateStore.Json));
}
