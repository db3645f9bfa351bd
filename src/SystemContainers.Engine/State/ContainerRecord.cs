using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.State;

/// <summary>config.json: what the container is. Changes only on create and config updates.</summary>
public sealed record ContainerRecord(
    string Name,
    string ImageFingerprint,
    string? ImageAlias,
    IReadOnlyDictionary<string, string> Config,
    DateTimeOffset Created,
    IdMap? IdMap,
    string InitKind);

/// <summary>state.json: what the container is doing. A pid is only trusted with its start time.</summary>
public sealed record RuntimeRecord(
    bool Running,
    int? Pid,
    ulong? PidStartTime,
    DateTimeOffset? StartedAt,
    DateTimeOffset? StoppedAt,
    int? LastExitCode,
    int? LastExitSignal,
    bool Shifted)
{
    public static RuntimeRecord NeverStarted { get; } = new(false, null, null, null, null, null, null, false);
}
