using SystemContainers.Engine;
using SystemContainers.Engine.Containers;

namespace SystemContainers.Daemon;

/// <summary>
/// GET /1.0/operations/{id}/stream?secret=: the source daemon's half of a container's transfer to
/// another daemon. The body is the container's backup tarball (ExportContainer: config, snapshots,
/// rootfs), as btrfs send streams when the puller asks for them (?optimized=1) and the container is
/// in a btrfs pool; its checksum (XXH128, ChecksumStream) follows as an HTTP/2 trailer, which the puller checks before it
/// keeps anything. The migration operation ends as the send did. A live move's stream (with a
/// control secret in a header) begins while the container runs, with its volume as a snapshot took
/// it (btrfs), and goes on once criu holds it frozen (SendRunningContainer) with the volume's
/// changes since and criu's images; the container stays frozen until the target says, with that
/// secret (POST /1.0/operations/{id}/control), that it runs it or that it failed.
/// </summary>
public static class ContainerSend
{
    /// <summary>The trailer that carries the stream's XXH128, lower-case hex.</summary>
    public const string ChecksumTrailer = "x-systemcontainers-xxh128";

    /// <summary>Bytes sent before the test hook "migration-sent-part": the puller has begun receiving by then.</summary>
    private const long PartBytes = 64 * 1024;

    private const int SendBufferBytes = 1024 * 1024;

    /// <summary>The response header that carries a live move's control secret (MigrationSource.OpenControl).</summary>
    public const string ControlHeader = "x-systemcontainers-control";

    /// <summary>How long a live move's source holds the container frozen for the target's word; then it resumes here.</summary>
    private static readonly TimeSpan VerdictTimeout = TimeSpan.FromSeconds(60);

    public static async Task RunAsync(ContainerService containers, MigrationSource source, bool optimizedAsked, HttpContext ctx)
    {
        try
        {
            if (!ctx.Response.SupportsTrailers())
                throw EngineException.Invalid("Http2Required", "a container's stream carries its checksum in an HTTP/2 trailer: fetch it over HTTP/2");
            var pool = containers.Storage.Get(containers.Get(source.Container).StoragePool).Pool;
            bool optimized = optimizedAsked && pool.Driver == "btrfs";
            var options = new ExportOptions(source.IncludeSnapshots, optimized, BackupCompression.None);
            object? sent = null;
            if (source.Live)
            {
                Body? body = null;
                await containers.SendRunningAsync(source.Container, options, async export =>
                {
                    ctx.Response.Headers[ControlHeader] = source.OpenControl();
                    body = new Body(ctx);
                    await export.WritePresyncAsync(body.Buffered, ctx.RequestAborted);
                    // Out now, so the target receives it while the container still runs here.
                    await body.Buffered.FlushAsync(ctx.RequestAborted);
                }, async export =>
                {
                    await export.WriteAsync(body!.Buffered, ctx.RequestAborted);
                    sent = await body!.FinishAsync(source, optimized, ctx);
                    // The response ends with its trailer, so the target can check and import it; it
                    // restores the container and answers on the control path, the tree frozen here meanwhile.
                    await ctx.Response.CompleteAsync();
                    StepTrace.Mark("live move: stream sent");
                    var verdict = await WaitVerdictAsync(source);
                    if (!verdict.Success)
                        throw new EngineException(FailureKind.Failed, "TargetFailed",
                            $"the target did not run container {source.Container}, which runs on here: {verdict.Error}");
                }, ctx.RequestAborted);
                DaemonLog.Info($"moved running container {source.Container}: the target runs it, removed here");
            }
            else
            {
                using var export = await containers.ExportAsync(source.Container, options, ctx.RequestAborted);
                var body = new Body(ctx);
                await export.WriteAsync(body.Buffered, ctx.RequestAborted);
                sent = await body.FinishAsync(source, optimized, ctx);
            }
            source.Sent.TrySetResult(sent);
        }
        catch (Exception e)
        {
            source.Sent.TrySetException(e);
            if (!ctx.Response.HasStarted && !ctx.RequestAborted.IsCancellationRequested) throw;
            // Once the stream has started, cutting it is how the puller learns it is incomplete.
            if (!ctx.RequestAborted.IsCancellationRequested) DaemonLog.Failure($"send of container {source.Container}", e);
            ctx.Abort();
        }
    }

    /// <summary>The response body the export is written to (Buffered), and its checksum as the trailer once it is all written.</summary>
    private sealed class Body
    {
        private readonly ChecksumStream _checksum;

        public Body(HttpContext ctx)
        {
            ctx.Response.ContentType = RestApi.BackupContentType;
            bool reached = false;
            _checksum = new ChecksumStream(ctx.Response.Body, sent =>
            {
                if (reached || sent < PartBytes) return;
                reached = true;
                TestHooks.Reach("migration-sent-part");
            });
            // The export writes 80 KiB at a time and Kestrel flushes each write as HTTP/2 frames of
            // its own; 1 MiB writes cost far fewer trips (bench/RESULTS.md, migration A/B). Not
            // disposed, as _checksum: it holds only memory, and the response owns its body.
            Buffered = new BufferedStream(_checksum, SendBufferBytes);
        }

        public BufferedStream Buffered { get; }

        /// <summary>Flushes what is buffered and appends the trailer; what was sent, as the operation's result.</summary>
        public async Task<object> FinishAsync(MigrationSource source, bool optimized, HttpContext ctx)
        {
            await Buffered.FlushAsync(ctx.RequestAborted);
            // A test run can have the source lie about what it sent, to see the target refuse the stream.
            ctx.Response.AppendTrailer(ChecksumTrailer, TestHooks.Faulty("migration-wrong-checksum") ? new string('0', 32) : _checksum.Checksum);
            DaemonLog.Info($"sent container {source.Container}: {_checksum.Bytes} bytes{(optimized ? " (btrfs send)" : "")}{(source.Live ? " with criu's images" : "")}, {ChecksumStream.Algorithm} {_checksum.Checksum}");
            return new Dictionary<string, object> { ["bytes"] = _checksum.Bytes, ["checksum"] = $"{ChecksumStream.Algorithm.ToLowerInvariant()}:{_checksum.Checksum}", ["optimized"] = optimized };
        }
    }

    /// <summary>The live move's target's word; none within VerdictTimeout is a failure (a target killed after the stream says nothing).</summary>
    private static async Task<Api.MigrationVerdict> WaitVerdictAsync(MigrationSource source)
    {
        if (await Task.WhenAny(source.Verdict.Task, Task.Delay(VerdictTimeout)) != source.Verdict.Task)
            source.Verdict.TrySetResult(new(false, $"the target did not answer within {VerdictTimeout.TotalSeconds} s of receiving it"));
        return await source.Verdict.Task;
    }
}
