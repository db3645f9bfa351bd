using System.Collections.Concurrent;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Containers;

/// <summary>The containers the daemon knows, by name.</summary>
internal sealed class ContainerRegistry
{
    private readonly ConcurrentDictionary<string, Container> _containers = new(StringComparer.Ordinal);

    /// <summary>Held while a create chooses an id map and claims its name, so two creates never get one block.</summary>
    public object ClaimLock { get; } = new();

    /// <summary>Each container once, though a rename gives it two names for a moment.</summary>
    public IEnumerable<Container> All => _containers.Values.Distinct();
    public ICollection<string> Names => _containers.Keys;

    public bool Contains(string name) => _containers.ContainsKey(name);
    public bool TryAdd(Container c) => _containers.TryAdd(c.Name, c);
    public void Set(Container c) => _containers[c.Name] = c;

    /// <summary>A second name for the container while it is renamed; false when the name is taken.</summary>
    public bool TryClaim(string name, Container c) => _containers.TryAdd(name, c);

    /// <summary>Drops one of the container's names, only while it still means this container.</summary>
    public void Release(string name, Container c) => _containers.TryRemove(new KeyValuePair<string, Container>(name, c));

    /// <summary>Removes the name only while it still means this container.</summary>
    public void Remove(Container c) => Release(c.Name, c);

    /// <summary>Whether the name still means this container (not removed, not taken by a newer one).</summary>
    public bool IsCurrent(Container c) => _containers.TryGetValue(c.Name, out var current) && current == c;

    public Container Find(string name) =>
        _containers.TryGetValue(name, out var c) ? c : throw EngineException.NotFound("ContainerNotFound", $"container '{name}' not found");

    public static EngineException Gone(string name) =>
        EngineException.NotFound("ContainerNotFound", $"container '{name}' not found (it was removed)");

    public IReadOnlyList<string> UsersOf(string fingerprint) =>
        All.Where(c => c.Record.ImageFingerprint == fingerprint).Select(c => c.Name).Order().ToList();

    /// <summary>The containers whose root is in the pool (records older than pools are in the default one).</summary>
    public IReadOnlyList<string> UsersOfPool(string pool) =>
        All.Where(c => (c.Record.StoragePool ?? Storage.StoragePool.DefaultName) == pool).Select(c => c.Name).Order().ToList();

    /// <summary>
    /// The maps that are some container's own: a shared map is no one's, and may be handed out
    /// again. Only the one key is read, so this holds for damaged containers too.
    /// </summary>
    public IEnumerable<IdMap> IsolatedMaps() =>
        All.Select(c => c.Record).Where(r => r.IdMap is not null && ContainerConfig.IsIsolated(r.Config)).Select(r => r.IdMap!);

    /// <summary>The CPU pins of the running containers but one.</summary>
    public IEnumerable<string> CpuSetsExcept(Container? except) =>
        All.Where(c => c != except).Select(c => c.Live?.CpuSet).OfType<string>();
}
