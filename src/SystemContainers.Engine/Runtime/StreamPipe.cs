using System.IO.Pipelines;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// Joins a step that writes a stream to one that reads it, through a bounded in-memory pipe: both
/// run at once, so a volume streams through without being held. The first to fail cancels the
/// other, so neither is left blocked on a pipe nobody serves.
/// </summary>
public static class StreamPipe
{
    // Segments of 64 KiB, not the default 4 KiB: a volume's stream is written in chunks of up to 1 MiB.
    private static readonly PipeOptions Bounded = new(pauseWriterThreshold: 4 << 20, resumeWriterThreshold: 2 << 20, minimumSegmentSize: 64 << 10,
        useSynchronizationContext: false);

    public static async Task RunAsync(Func<Stream, CancellationToken, Task> write, Func<Stream, CancellationToken, Task> read, CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var pipe = new Pipe(Bounded);
        Exception? first = null;
        void Failed(Exception e)
        {
            Interlocked.CompareExchange(ref first, e, null);
            cts.Cancel();
        }
        var writer = Task.Run(async () =>
        {
            try
            {
                await write(pipe.Writer.AsStream(leaveOpen: true), cts.Token);
                await pipe.Writer.CompleteAsync();
            }
            catch (Exception e)
            {
                Failed(e);
                await pipe.Writer.CompleteAsync(e);
                throw;
            }
        }, CancellationToken.None);
        var reader = Task.Run(async () =>
        {
            try
            {
                await read(pipe.Reader.AsStream(leaveOpen: true), cts.Token);
                await pipe.Reader.CompleteAsync();
            }
            catch (Exception e)
            {
                Failed(e);
                await pipe.Reader.CompleteAsync(e);
                throw;
            }
        }, CancellationToken.None);
        try
        {
            await Task.WhenAll(writer, reader);
        }
        catch when (first is not null)
        {
            // The step that failed first says why; the other only saw the cancellation or the closed pipe.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(first).Throw();
        }
    }
}
