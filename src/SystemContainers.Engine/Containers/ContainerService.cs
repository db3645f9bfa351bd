using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Files;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Migration;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Stats;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// The engine's front door for containers: create, start, stop, exec, delete, list. Each state
/// change runs under its container's gate, one at a time, and is announced as an event; the
/// verbs themselves are one class each. The daemon process is the child subreaper and parent of
/// every container init; exits arrive through pidfds on the event loop. After a daemon restart,
/// running containers are adopted again.
/// </summary>
public sealed class ContainerService : IDisposable, ISnapshotHost
{
    private readonly EngineParts _parts;
    private readonly ContainerRegistry _registry = new();
    private readonly StatsSampler _sampler;
    private readonly CreateContainer _create;
    private readonly StartContainer _start;
    private readonly StopContainer _stop;
    private readonly CheckpointContainer _checkpoint;
    private readonly DeleteContainer _delete;
    private readonly UpdateContainer _update;
    private readonly ExecContainer _exec;
    private readonly FreezeContainer _freeze;
    private readonly SnapshotContainer _snapshot;
    private readonly CopyContainerFile _copy;
    private readonly RenameContainer _rename;
    private readonly CopyContainer _duplicate;
    private readonly PublishContainer _publish;
    private readonly ExportContainer _export;
    private readonly ImportContainer _import;
    private readonly SendRunningContainer _sendRunning;

    public ContainerService(EngineOptions options, ImageStore images, ICgroupDriver cgroups)
    {
        var store = new StateStore(options.StateDir, options.RunDir);
        var scInit = new ScInit(options.ScInitPath);
        // Container inits are orphaned when sc-init exits; as subreaper this process inherits and reaps them.
        Sys.SetChildSubreaper();
        if (!File.Exists(options.ScInitPath))
            throw EngineException.NotFound("ScInitNotFound", $"sc-init not found at {options.ScInitPath}; run ./build.ps1 build");
        // The run directory may be traversable (for dnsmasq); the containers' mounts are root's alone.
        File.SetUnixFileMode(store.RunContainersDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var loop = new EventLoop();
        Networks = new NetworkManager(options, loop);
        Lxcfs = new Lxcfs(options.LxcfsPath, options.RunDir, loop);
        Storage = new StorageService(options, store, images, _registry.UsersOfPool, _registry.ClaimLock);
        _parts = new EngineParts(options, store, images, cgroups, scInit, loop, Networks, Storage, Lxcfs, _registry, new CpuAllocator(), Raise);
        var cleanup = new ContainerCleanup(_parts);
        var supervisor = new ContainerSupervisor(_parts, cleanup);
        var nicDefaults = new NicDefaults(options, Networks);
        _sampler = new StatsSampler(cgroups);
        _create = new CreateContainer(_parts, nicDefaults);
        var checkpoint = new ContainerCheckpoint(new CriuClient(options.CriuPath));
        _start = new StartContainer(_parts, cleanup, supervisor, checkpoint);
        _freeze = new FreezeContainer(_parts);
        _stop = new StopContainer(_freeze);
        _checkpoint = new CheckpointContainer(_parts, _freeze, checkpoint);
        _delete = new DeleteContainer(_parts, _stop);
        _update = new UpdateContainer(_parts, cleanup, nicDefaults);
        _exec = new ExecContainer(_parts);
        _snapshot = new SnapshotContainer(_parts, _freeze, _checkpoint);
        _copy = new CopyContainerFile(_parts);
        _rename = new RenameContainer(_parts);
        _duplicate = new CopyContainer(_parts, nicDefaults, _freeze);
        _publish = new PublishContainer(_parts);
        _export = new ExportContainer(_parts, _freeze);
        _import = new ImportContainer(_parts, nicDefaults);
        _sendRunning = new SendRunningContainer(_checkpoint, _export, _delete);
        var adopt = new AdoptContainer(_parts, cleanup, supervisor);

        Recovery.ReclaimStaging(store.ContainersDir);
        Recovery.ReclaimTempFiles(store.ContainersDir);
        Recovery.ReclaimTempFiles(store.RunContainersDir);
        Recovery.ReclaimStaging(Path.Combine(options.StateDir, "backups"));
        var renaming = new List<string>();
        foreach (var name in store.Names().ToList()) adopt.Load(_rename.Resume(name, renaming));
        Storage.ReclaimOrphans([.. _registry.Names, .. renaming]);
        Recovery.ReclaimOrphans(store.RunContainersDir, _registry.Names);
        Networks.StartServices();
        Lxcfs.Start();
    }

    /// <summary>Where the containers' /proc and /sys views of their own limits come from.</summary>
    public Lxcfs Lxcfs { get; }

    /// <summary>The storage pools the containers' roots are in.</summary>
    public StorageService Storage { get; }

    /// <summary>The managed networks the containers' NICs join.</summary>
    public NetworkManager Networks { get; }

    public event Action<EngineEvent>? Events;

    public string CgroupVersion => _parts.Cgroups.Version;

    public IReadOnlyList<ContainerView> List() =>
        _registry.All.Select(View).OrderBy(v => v.Name, StringComparer.Ordinal).ToList();

    public ContainerView Get(string name) => View(_registry.Find(name));

    public string ConsoleLogPath(string name) => _parts.ConsoleLogOf(_registry.Find(name).Name);

    /// <summary>Host-side facts for tests and diagnostics: the cgroup directories of a running container.</summary>
    public IReadOnlyList<string> CgroupDirectories(string name) =>
        _registry.Find(name).Live?.Cgroup.Directories ?? [];

    /// <summary>The one container of that name, for the engine's own tests.</summary>
    internal Container Find(string name) => _registry.Find(name);

    public ContainerView Create(string name, string image, IReadOnlyDictionary<string, string>? config, string? storagePool = null)
    {
        var container = _create.Run(name, image, config, storagePool);
        Raise("container-created", name);
        return View(container);
    }

    /// <summary>Starts a container; one stopped with its state is restored from it, unless stateless discards the state first.</summary>
    public Task<ContainerView> StartAsync(string name, CancellationToken ct = default, Guid? id = null, bool stateless = false) =>
        UnderGate(name, "container-started", c =>
        {
            _start.Run(c, stateless);
            return Task.CompletedTask;
        }, ct, id);

    /// <summary>Stops a container; stateful saves its processes first (criu), for the next start to restore.</summary>
    public Task<ContainerView> StopAsync(string name, bool force, TimeSpan? timeout, CancellationToken ct = default, Guid? id = null, bool stateful = false) =>
        UnderGate(name, "container-stopped", c => stateful ? _checkpoint.StopAsync(c) : _stop.RunAsync(c, force, timeout), ct, id);

    public Task<ContainerView> RestartAsync(string name, bool force, TimeSpan? timeout, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-restarted", async c =>
        {
            await _stop.RunAsync(c, force, timeout);
            _start.Run(c);
        }, ct, id);

    public Task DeleteAsync(string name, bool force, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-deleted", c => _delete.RunAsync(c, force), ct, id, evenDamaged: true);

    /// <summary>Changes config keys (a null or empty value removes one); see UpdateContainer.</summary>
    public Task<ContainerView> UpdateConfigAsync(string name, IReadOnlyDictionary<string, string?> changes, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-updated", c =>
        {
            _update.Run(c, changes);
            return Task.CompletedTask;
        }, ct, id);

    /// <summary>Gives a stopped container a new name; it keeps its config, snapshots, NICs and addresses (see RenameContainer).</summary>
    public Task<ContainerView> RenameAsync(string name, string newName, CancellationToken ct = default) =>
        UnderGate(name, "container-renamed", c =>
        {
            _rename.Run(c, newName);
            return Task.CompletedTask;
        }, ct, null);

    /// <summary>
    /// A new container name, a copy of source (or of its snapshot) in its pool or in storagePool;
    /// it has the source's config with new MACs and host-side names, and the source's snapshots
    /// unless instanceOnly or it is a snapshot's copy (see CopyContainer).
    /// </summary>
    public async Task<ContainerView> CopyAsync(string source, string name, string? snapshot, string? storagePool, bool instanceOnly = false,
        CancellationToken ct = default)
    {
        Container? made = null;
        await UnderGate(source, "container-copied", async c => made = await _duplicate.RunAsync(c, name, snapshot, storagePool, instanceOnly, ct), ct, null);
        Raise("container-created", name);
        return View(made!);
    }

    /// <summary>A stopped container, or one of its snapshots, as a new image under alias (see PublishContainer).</summary>
    public async Task<ImageRecord> PublishAsync(string name, string? snapshot, string alias, string? description, IProgress<string>? progress,
        CancellationToken ct = default)
    {
        ImageRecord? made = null;
        await UnderGate(name, "container-published", async c => made = await _publish.RunAsync(c, snapshot, alias, description, progress, ct), ct, null);
        return made!;
    }

    /// <summary>
    /// A read-only snapshot of the container's volume (named by snapshots.pattern, snap0, snap1, ...
    /// by default, when no name is given) that the sweep deletes once expiresAt has passed (never
    /// when null); a running container is frozen meanwhile. Stateful, it keeps the running
    /// processes too (criu, the container running on).
    /// </summary>
    public async Task<SnapshotInfo> SnapshotAsync(string name, string? snapshot, CancellationToken ct = default, DateTimeOffset? expiresAt = null,
        bool stateful = false)
    {
        SnapshotInfo? made = null;
        await UnderGate(name, "container-snapshot-created", c =>
        {
            made = _snapshot.Create(c, snapshot, expiresAt, stateful);
            return Task.CompletedTask;
        }, ct, null);
        return made!;
    }

    /// <summary>
    /// Makes a stopped container's volume what the snapshot holds; the snapshot stays. Stateful,
    /// the container then runs again from the snapshot's processes; a restore of them that fails
    /// leaves it stopped with them as its saved state, for another start or -Stateless.
    /// </summary>
    public Task<ContainerView> RestoreSnapshotAsync(string name, string snapshot, CancellationToken ct = default, bool stateful = false) =>
        UnderGate(name, "container-snapshot-restored", c =>
        {
            _snapshot.Restore(c, snapshot, stateful);
            if (stateful) _start.Run(c);
            return Task.CompletedTask;
        }, ct, null);

    public Task<ContainerView> DeleteSnapshotAsync(string name, string snapshot, CancellationToken ct = default) =>
        UnderGate(name, "container-snapshot-deleted", c =>
        {
            _snapshot.Delete(c, snapshot);
            return Task.CompletedTask;
        }, ct, null);

    /// <summary>Gives a snapshot a new name; the container may be running, since the snapshot is not its root.</summary>
    public async Task<SnapshotInfo> RenameSnapshotAsync(string name, string snapshot, string newName, CancellationToken ct = default)
    {
        SnapshotInfo? renamed = null;
        await UnderGate(name, "container-snapshot-renamed", c =>
        {
            renamed = _snapshot.Rename(c, snapshot, newName);
            return Task.CompletedTask;
        }, ct, null);
        return renamed!;
    }

    public IReadOnlyList<SnapshotInfo> Snapshots(string name) => _snapshot.List(_registry.Find(name));

    /// <summary>What the snapshot scheduler asks of every container: its snapshots.* keys and whether it runs.</summary>
    internal IReadOnlyList<ScheduleCandidate> ScheduleCandidates()
    {
        var all = new List<ScheduleCandidate>();
        foreach (var c in _registry.All.Where(c => c.Damage is null))
        {
            // A config this host no longer accepts (less memory than its limit) costs that container its schedule, not the others theirs.
            try { all.Add(new ScheduleCandidate(c.Name, c.Spec.Snapshots, c.Live is not null)); }
            catch (EngineException e) { EngineLog.Write($"snapshot schedule: cannot read the config of container '{c.Name}': {e.Message}"); }
        }
        return all;
    }

    /// <summary>Names the containers, for the sweep of expired snapshots.</summary>
    internal IReadOnlyList<string> Names() => [.. _registry.All.Where(c => c.Damage is null).Select(c => c.Name)];

    /// <summary>An event that is not the end of a state change (a scheduled snapshot that failed), with what it is about.</summary>
    internal void Report(string action, string name, IReadOnlyDictionary<string, string> context) =>
        Events?.Invoke(new EngineEvent(action, name, DateTimeOffset.UtcNow, context));

    IReadOnlyList<ScheduleCandidate> ISnapshotHost.ScheduleCandidates() => ScheduleCandidates();

    IReadOnlyList<string> ISnapshotHost.Names() => Names();

    Task<SnapshotInfo> ISnapshotHost.SnapshotAsync(string name, string? snapshot, CancellationToken ct, DateTimeOffset? expiresAt) =>
        SnapshotAsync(name, snapshot, ct, expiresAt);

    Task ISnapshotHost.DeleteSnapshotAsync(string name, string snapshot, CancellationToken ct) => DeleteSnapshotAsync(name, snapshot, ct);

    void ISnapshotHost.Report(string action, string name, IReadOnlyDictionary<string, string> context) => Report(action, name, context);

    /// <summary>Freezes every process of a running container (cgroup freezer).</summary>
    public Task<ContainerView> FreezeAsync(string name, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-frozen", c =>
        {
            _freeze.Freeze(c);
            return Task.CompletedTask;
        }, ct, id);

    public Task<ContainerView> ThawAsync(string name, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-thawed", c =>
        {
            _freeze.Thaw(c);
            return Task.CompletedTask;
        }, ct, id);

    public ExecSession Exec(string name, ExecRequest request) => _exec.Run(_registry.Find(name), request);

    /// <summary>Files out of a container as a tar stream (see FilePull); the returned pull holds the container until disposed.</summary>
    public Task<FilePull> PullFilesAsync(string name, string path, bool recurse, CancellationToken ct = default) =>
        _copy.PullAsync(_registry.Find(name), path, recurse, ct);

    /// <summary>Files from a tar stream into a container at destination (see FilePush).</summary>
    public Task<FilePushResult> PushFilesAsync(string name, string destination, bool force, Stream archive, CancellationToken ct = default) =>
        _copy.PushAsync(_registry.Find(name), destination, force, archive, ct);

    /// <summary>A stopped container as a backup tarball (see ExportContainer): checked now, written by the export, which holds the container until disposed.</summary>
    public Task<ContainerExport> ExportAsync(string name, ExportOptions options, CancellationToken ct = default) =>
        _export.OpenAsync(_registry.Find(name), options, ct);

    /// <summary>
    /// A live move's source (see SendRunningContainer): the first part of the running container's
    /// stream goes to presync (ContainerExport.WritePresyncAsync), the rest with criu's images to
    /// handOver while the tree is frozen (WriteAsync); the container is removed once handOver
    /// returns, and runs on here if either throws.
    /// </summary>
    public Task SendRunningAsync(string name, ExportOptions options, Func<ContainerExport, Task> presync, Func<ContainerExport, Task> handOver,
        CancellationToken ct = default) =>
        UnderGate(name, "container-deleted", c => _sendRunning.RunAsync(c, options, presync, handOver), ct, null);

    /// <summary>A new container from a backup tarball read from tarball (see ImportContainer).</summary>
    public async Task<ContainerView> ImportAsync(Stream tarball, ImportOptions options, CancellationToken ct = default)
    {
        var container = await _import.RunAsync(tarball, options, ct);
        Raise("container-created", container.Name);
        return View(container);
    }

    /// <summary>Removes an image, refused while a container uses it; the check and the removal are one step under the image store's lock.</summary>
    public Task RemoveImageAsync(string reference) => _parts.Images.RemoveAsync(reference, _registry.UsersOf);

    /// <summary>A sample of every container's resource use; one removed while they are sampled is left out.</summary>
    public IReadOnlyList<ContainerStats> StatsOfAll()
    {
        var all = new List<ContainerStats>();
        foreach (var c in List())
        {
            try { all.Add(Stats(c.Name)); }
            catch (EngineException e) when (e.Kind == FailureKind.NotFound) { }
        }
        return all;
    }

    /// <summary>
    /// A sample of a container's resource use; a stopped container gives a sample that says so.
    /// Its CPU rate is over the time since the previous sample of this run.
    /// </summary>
    public ContainerStats Stats(string name)
    {
        var c = _registry.Find(name);
        var live = c.Live;
        var s = _sampler.Read(_parts.Storage.UsageTreeOf(c.Record), live?.Cgroup, live?.Pid);
        if (live is null)
            return new ContainerStats(name, c.Damage is null ? ContainerStatus.Stopped : ContainerStatus.Error, s.At, TimeSpan.Zero, null, 0, TimeSpan.Zero, [],
                s.Disk.Bytes, c.Runtime.OomKills, s.Disk.Partial, c.Spec.Limits.DiskBytes);
        var previous = live.LastSample;
        var cpu = s.Cpu;
        live.LastSample = cpu;
        return new ContainerStats(name, live.Frozen ? ContainerStatus.Frozen : ContainerStatus.Running, s.At,
            s.At - (c.Runtime.StartedAt ?? s.At), s.Cgroup, cpu.PercentSince(previous), s.At - previous.At, s.Network, s.Disk.Bytes,
            DiskUsagePartial: s.Disk.Partial, DiskLimitBytes: c.Spec.Limits.DiskBytes);
    }

    /// <summary>
    /// Runs one state change at a time per container, then announces it. The change acts on the
    /// container the name meant when it was asked for (or the one with id): one removed while the
    /// change waited is not found, even if a newer container has taken its name since.
    /// </summary>
    private async Task<ContainerView> UnderGate(string name, string action, Func<Container, Task> change, CancellationToken ct,
        Guid? id, bool evenDamaged = false)
    {
        var c = _registry.Find(name);
        if (id is Guid expected && c.Record.Id != expected) throw ContainerRegistry.Gone(name);
        await c.Gate.WaitAsync(ct);
        try
        {
            if (!_registry.IsCurrent(c)) throw ContainerRegistry.Gone(name);
            if (!evenDamaged) c.Intact();
            await change(c);
        }
        finally
        {
            c.Gate.Release();
        }
        Raise(action, name);
        return View(c);
    }

    private ContainerView View(Container c)
    {
        var r = c.Record;
        var rt = c.Runtime;
        var live = c.Live;
        var (v4, v6) = live is null ? ([], []) : NetnsAddresses.Read(live.Pid);
        var status = c.Damage is not null ? ContainerStatus.Error
            : live is null ? ContainerStatus.Stopped : live.Frozen ? ContainerStatus.Frozen : ContainerStatus.Running;
        return new ContainerView(r.Name, status, r.ImageFingerprint, r.ImageAlias, live?.Pid, r.Created, rt.StartedAt, rt.StoppedAt,
            rt.LastExitCode, rt.LastExitSignal, r.IdMap is null, r.InitKind, r.Config, v4, v6, r.Id, c.Damage, rt.Recovery,
            r.StoragePool ?? StoragePool.DefaultName)
        {
            Stateful = live is null && CheckpointContainer.HasState(_parts, r.Name),
        };
    }

    private void Raise(string action, string name) => Events?.Invoke(new EngineEvent(action, name, DateTimeOffset.UtcNow));

    /// <summary>Daemon shutdown: containers keep running (a new daemon adopts them); an empty cgroup group is removed.</summary>
    public void Dispose()
    {
        Lxcfs.Dispose();
        Networks.Dispose();
        _parts.Loop.Dispose();
        _parts.Cgroups.ReleaseGroup();
        _parts.ScInit.Dispose();
    }
}
