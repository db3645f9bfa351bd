namespace SystemContainers.Engine;

/// <summary>Why an engine request failed, so callers (HTTP, cmdlets) can map it to a status and category.</summary>
public enum FailureKind { InvalidArgument, NotFound, Conflict, Failed, Forbidden }

/// <summary>An engine error a user can act on; Reason is a stable id such as "ContainerNotFound".</summary>
public class EngineException : Exception
{
    public EngineException(FailureKind kind, string reason, string message, Exception? inner = null)
        : base(message, inner)
    {
        Kind = kind;
        Reason = reason;
    }

    public FailureKind Kind { get; }
    public string Reason { get; }

    public static EngineException Invalid(string reason, string message) => new(FailureKind.InvalidArgument, reason, message);
    public static EngineException NotFound(string reason, string message) => new(FailureKind.NotFound, reason, message);
    public static EngineException Conflict(string reason, string message) => new(FailureKind.Conflict, reason, message);
}
