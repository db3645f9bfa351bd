namespace SystemContainers.Daemon;

/// <summary>
/// Decides when a finished command's output has all been forwarded. Output still in a pipe or
/// pty is read to its end, however slowly the readers get scheduled; but a background child
/// that keeps the stream open would hold it for ever, so once every reader has waited idle in
/// a read for <see cref="Idle"/> after the command ended the rest is not waited for. Idle time
/// from before the end does not count: a command quiet for a while that writes its last line
/// and exits would otherwise lose that line when the exit is seen before the read returns.
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
        long ended = Environment.TickCount64;
        while (!readers.IsCompleted)
        {
            bool idle = Volatile.Read(ref _waiting) == readerCount &&
                Environment.TickCount64 - Math.Max(ended, Volatile.Read(ref _lastActivity)) > Idle.TotalMilliseconds;
            if (idle) return;
            await Task.WhenAny(readers, Task.Delay(100));
        }
    }
}
