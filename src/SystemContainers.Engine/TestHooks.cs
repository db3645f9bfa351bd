namespace SystemContainers.Engine;

/// <summary>
/// Named points in the engine's multi-step changes where the crash tests stop the daemon.
/// Inert unless a test run sets SYSTEMCONTAINERS_TEST_CRASH_AT (comma-separated points: the
/// daemon SIGKILLs itself on reaching one) or SYSTEMCONTAINERS_TEST_PAUSE_AT=point,...:file (the
/// daemon creates file and waits there until the test deletes it, so the test can change the
/// world, e.g. fill the disk, at a known moment). Nothing is timed, so the tests are exact.
/// SYSTEMCONTAINERS_TEST_FAULT_AT=point,... has the daemon misbehave at a point on purpose (see
/// Faulty), so a test can watch its peer refuse what it was sent, or a step fail as the kernel
/// could fail it.
/// </summary>
public static class TestHooks
{
    private static readonly HashSet<string> CrashAt =
        (Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_TEST_CRASH_AT") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
    private static readonly (HashSet<string> Points, string File)? PauseAt = ParsePause(Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_TEST_PAUSE_AT"));

    private static readonly HashSet<string> FaultAt =
        (Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_TEST_FAULT_AT") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet();

    /// <summary>Whether the test run asks for the fault named point; false in every other run.</summary>
    public static bool Faulty(string point) => FaultAt.Contains(point);

    public static void Reach(string point)
    {
        if (CrashAt.Contains(point))
        {
            EngineLog.Write($"test hook: SIGKILL at {point}");
            Tmds.Linux.LibC.kill(Environment.ProcessId, 9);
        }
        if (PauseAt is var (points, file) && points.Contains(point))
        {
            File.WriteAllText(file, point);
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
            while (File.Exists(file) && DateTime.UtcNow < deadline) Thread.Sleep(20);
        }
    }

    private static (HashSet<string>, string)? ParsePause(string? value)
    {
        int colon = value?.IndexOf(':') ?? -1;
        return colon < 0 ? null : (value![..colon].Split(',').ToHashSet(), value[(colon + 1)..]);
    }
}
