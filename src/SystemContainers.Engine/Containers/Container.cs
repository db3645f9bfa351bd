using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>One container: its record on disk, its parsed spec, its last run, and its live init when it runs.</summary>
internal sealed class Container
{
    private ContainerRecord _record;
    private ContainerConfig? _spec;

    public Container(ContainerRecord record, RuntimeRecord runtime, ContainerConfig? spec = null)
    {
        _record = record;
        _spec = spec;
        Runtime = runtime;
    }

    public ContainerRecord Record => _record;

    /// <summary>The record's config parsed once and held; a new record brings its own.</summary>
    public ContainerConfig Spec => _spec ??= ContainerConfig.Parse(_record.Config);

    public RuntimeRecord Runtime;
    public LiveInit? Live;
    /// <summary>Why its files could not be read (status Error); such a container can only be removed.</summary>
    public string? Damage;
    /// <summary>Set while a stop waits for the init to exit.</summary>
    public volatile bool Stopping;
    public readonly SemaphoreSlim Gate = new(1, 1);

    public string Name => _record.Name;
    public int RootUid => _record.IdMap?.RootUid ?? 0;
    public int RootGid => _record.IdMap?.RootGid ?? 0;

    /// <summary>Replaces the record with one whose config is the already parsed spec.</summary>
    public void Replace(ContainerRecord record, ContainerConfig spec)
    {
        _spec = spec;
        _record = record;
    }

    public ContainerState State => Snapshot().State;

    /// <summary>The state with the live init it was read from, read once: an exit may clear Live at any moment.</summary>
    public (ContainerState State, LiveInit? Live) Snapshot()
    {
        var live = Live;
        if (Damage is not null) return (ContainerState.Damaged, live);
        if (live is null) return (ContainerState.Stopped, null);
        if (Stopping) return (ContainerState.Stopping, live);
        return (live.Frozen ? ContainerState.Frozen : ContainerState.Running, live);
    }

    /// <summary>Refuses to act on a container whose files could not be read.</summary>
    public Container Intact() => Damage is null ? this : throw Damaged();

    public EngineException Damaged() => EngineException.Conflict("ContainerDamaged",
        $"container '{Name}' is damaged ({Damage}); repair its files and restart the daemon, or remove it");

    public EngineException NotRunning() => EngineException.Conflict("NotRunning", $"container '{Name}' is not running");
}
