using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.State;

/// <summary>
/// config.json: what the container is. Changes only on create and config updates. Id tells
/// this container from an earlier or later one of the same name (records written before it
/// existed get one when loaded).
/// </summary>
public sealed record ContainerRecord(
    string Name,
    string ImageFingerprint,
    string? ImageAlias,
    IReadOnlyDictionary<string, string> Config,
    DateTimeOffset Created,
    IdMap? IdMap,
    string InitKind,
    Guid Id = default,
    int SchemaVersion = ContainerRecord.CurrentSchema)
{
    /// <summary>The storage pool that holds the container's root; null (records older than pools) is the default pool.</summary>
    public string? StoragePool { get; init; }

    public const int CurrentSchema = 1;
}

/// <summary>
/// state.json: what the container is doing. A pid is only trusted with its start time.
/// Starting is the intent written before the init is made: found at daemon start, it means
/// a start was cut short, and whatever it left in the container's cgroup is killed.
/// Recovery says what the last reconciliation did (adopted the init, killed leftovers).
/// </summary>
public sealed record RuntimeRecord(
    bool Running,
    int? Pid,
    ulong? PidStartTime,
    DateTimeOffset? StartedAt,
    DateTimeOffset? StoppedAt,
    int? LastExitCode,
    int? LastExitSignal,
    bool Shifted,
    bool Starting = false,
    string? Recovery = null,
    long OomKills = 0,
    int SchemaVersion = RuntimeRecord.CurrentSchema)
{
    public const int CurrentSchema = 1;

    public static RuntimeRecord NeverStarted { get; } = new(false, null, null, null, null, null, null, false);
}
