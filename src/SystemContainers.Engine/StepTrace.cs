using System.Diagnostics;

namespace SystemContainers.Engine;

/// <summary>
/// A debug aid for where the time of a launch or exec goes: with SYSTEMCONTAINERS_TRACE=1 in
/// the daemon's environment every step writes "trace MICROSECONDS THREAD STEP" to the daemon's
/// log, on the monotonic clock a client can read too (bench/trace.ps1 puts the two together).
/// Off (the default), a step costs one test of a flag.
/// </summary>
public static class StepTrace
{
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_TRACE") == "1";

    public static void Mark(string step)
    {
        if (Enabled) Console.Out.WriteLine($"trace {(long)(Stopwatch.GetTimestamp() * (1e6 / Stopwatch.Frequency))} {Environment.CurrentManagedThreadId} {step}");
    }
}
