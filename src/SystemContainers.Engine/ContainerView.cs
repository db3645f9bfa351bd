namespace SystemContainers.Engine;

/// <summary>Error: the container's files on disk could not be read; it can only be removed (or repaired by hand and the daemon restarted).</summary>
public enum ContainerStatus { Stopped, Running, Frozen, Error }

/// <summary>
/// A snapshot of one container, as listed and shown. Error says why a container is in status
/// Error; Recovery what the daemon last did to reconcile it after a crash or a failed start.
/// </summary>
public sealed record ContainerView(
    string Name,
    ContainerStatus Status,
    string ImageFingerprint,
    string? ImageAlias,
    int? Pid,
    DateTimeOffset Created,
    DateTimeOffset? StartedAt,
    DateTimeOffset? StoppedAt,
    int? LastExitCode,
    int? LastExitSignal,
    bool Privileged,
    string InitKind,
    IReadOnlyDictionary<string, string> Config,
    IReadOnlyList<string> IPv4,
    IReadOnlyList<string> IPv6,
    Guid Id,
    string? Error,
    string? Recovery,
    string StoragePool)
{
    /// <summary>Stopped with its state saved (Stop-SystemContainer -Stateful): the next start restores its processes.</summary>
    public bool Stateful { get; init; }
}

/// <summary>A lifecycle event (container-created, container-started, ...), for the events stream.</summary>
public sealed record EngineEvent(string Action, string Source, DateTimeOffset Time, IReadOnlyDictionary<string, string>? Context = null);

/// <summary>What to run in a container.</summary>
public sealed record ExecRequest(
    IReadOnlyList<string> Command,
    IReadOnlyDictionary<string, string>? Environment = null,
    string? WorkingDirectory = null,
    int User = 0,
    int Group = 0,
    bool Interactive = false,
    ushort Width = 80,
    ushort Height = 24);
