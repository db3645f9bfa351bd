namespace SystemContainers.Daemon;

/// <summary>
/// Decides when a finished command's output has all been forwarded. Output still in a pipe or
/// pty is read to its end, however slowly the readers get scheduled; but a background child
/// that keeps the stream open would hold it for ever, so once every reader has waited idle in
/// a read for <see cref="Idle"/> the rest is not waited for.
/// </summary>
public sealed class OutputDrain
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(1);
    private int _waiting;
    private long _lastActivity = Environment.TickCount64;

    /// <summary>Wraps one read of a reader: it counts as idle while parked in it.</summary>
    public async ValueTask<int> ReadAsync(Func<ValueTask<int>> read)
    {
        Interlocked.Increment(ref _waiting);
        try
        {
            return await read();
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
            Volatile.Write(ref _lastActivity, Environment.TickCount64);
        }
    }

    /// <summary>Waits for the readers to finish, or for all of them to sit idle in reads for a while.</summary>
    public async Task WaitAsync(Task readers, int readerCount)
    {
        while (!readers.IsCompleted)
        {
            bool idle = Volatile.Read(ref _waiting) == readerCount &&
                Environment.TickCount64 - Volatile.Read(ref _lastActivity) > Idle.TotalMilliseconds;
            if (idle) return;
            await Task.WhenAny(readers, Task.Delay(100));
        }
    }
}
