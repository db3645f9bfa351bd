namespace SystemContainers.Engine;

/// <summary>
/// What the engine has to say outside a request (reclaimed leftovers, failed undo steps, helpers
/// restarted): one line each on stderr, which the daemon sends to its log file or the journal,
/// timestamped like the daemon's own lines so the two read as one log.
/// </summary>
public static class EngineLog
{
    public static void Write(string message) => Console.Error.WriteLine($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} {message}");
}
