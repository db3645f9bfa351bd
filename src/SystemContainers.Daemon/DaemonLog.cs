using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>The daemon's log: its stdout, which is the log file when detached or the journal under systemd.</summary>
public static class DaemonLog
{
    public static void Info(string message) => Console.Out.WriteLine($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {message}");

    /// <summary>One line per failed request or operation: what was asked, the reason id, the message (which names the path and errno).</summary>
    public static void Failure(string what, Exception e)
    {
        var (status, id) = ErrorMapping.Classify(e);
        // Unexpected failures carry their stack: they are bugs to find.
        string detail = e is EngineException || status < 500 ? e.Message : e.ToString();
        Info($"failed {what}: {status} {id}: {detail}");
    }
}
