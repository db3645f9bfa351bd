using SystemContainers.Engine;
using SystemContainers.Engine.Containers;

namespace SystemContainers.Daemon;

/// <summary>
/// GET /1.0/operations/{id}/stream?secret=: the source daemon's half of a container's transfer to
/// another daemon. The body is the container's backup tarball (ExportContainer: config, snapshots,
/// rootfs), as btrfs send streams when the puller asks for them (?optimized=1) and the container is
/// in a btrfs pool; its SHA-256 follows as an HTTP/2 trailer, which the puller checks before it
/// keeps anything. The migration operation ends as the send did. A live move's stream is sent
/// while criu holds the running container frozen (SendRunningContainer), with criu's images after
/// the root and a control secret in a header; the container stays frozen until the target says,
/// with that secret (POST /1.0/operations/{id}/control), that it runs it or that it failed.
/// </summary>
public static class ContainerSend
{
    /// <summary>The trailer that carries the stream's SHA-256, lower-case hex.</summary>
    public const string ChecksumTrailer = "x-systemcontainers-sha256";

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
                throw EngineException.Invalid("Http2Required", "a container's stream carries its SHA-256 in an HTTP/2 trailer: fetch it over HTTP/2");
            var pool = containers.Storage.Get(containers.Get(source.Container).StoragePool).Pool;
            bool optimized = optimizedAsked && pool.Driver == "btrfs";
            var options = new ExportOptions(source.IncludeSnapshots, optimized, BackupCompression.None);
            object? sent = null;
            if (source.Live)
            {
                await containers.SendRunningAsync(source.Container, options, async export =>
                {
                    ctx.Response.Headers[ControlHeader] = source.OpenControl();
                    sent = await SendAsync(export, source, optimized, ctx);
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
                sent = await SendAsync(export, source, optimized, ctx);
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

    /// <summary>The export as the response body, then its SHA-256 as the trailer; what was sent, as the operation's result.</summary>
    private static async Task<object> SendAsync(ContainerExport export, MigrationSource source, bool optimized, HttpContext ctx)
    {
        ctx.Response.ContentType = RestApi.BackupContentType;
        bool reached = false;
        using var body = new HashingStream(ctx.Response.Body, sent =>
        {
            if (reached || sent < PartBytes) return;
            reached = true;
            TestHooks.Reach("migration-sent-part");
        });
        // The export writes 80 KiB at a time and Kestrel flushes each write as HTTP/2 frames of
        // its own; 1 MiB writes cost far fewer trips (bench/RESULTS.md, migration A/B). Not
        // disposed: that would dispose body, whose SHA-256 is read below; it holds only memory.
        var buffered = new BufferedStream(body, SendBufferBytes);
        await export.WriteAsync(buffered, ctx.RequestAborted);
        await buffered.FlushAsync(ctx.RequestAborted);
        // A test run can have the source lie about what it sent, to see the target refuse the stream.
        ctx.Response.AppendTrailer(ChecksumTrailer, TestHooks.Faulty("migration-wrong-checksum") ? new string('0', 64) : body.Sha256);
        DaemonLog.Info($"sent container {source.Container}: {body.Bytes} bytes{(optimized ? " (btrfs send)" : "")}{(source.Live ? " with criu's images" : "")}, SHA-256 {body.Sha256}");
        return new Dictionary<string, object> { ["bytes"] = body.Bytes, ["sha256"] = body.Sha256, ["optimized"] = optimized };
    }

    /// <summary>The live move's target's word; none within VerdictTimeout is a failure (a target killed after the stream says nothing).</summary>
    private static async Task<Api.MigrationVerdict> WaitVerdictAsync(MigrationSource source)
    {
        if (await Task.WhenAny(source.Verdict.Task, Task.Delay(VerdictTimeout)) != source.Verdict.Task)
            source.Verdict.TrySetResult(new(false, $"the target did not answer within {VerdictTimeout.TotalSeconds} s of receiving it"));
        return await source.Verdict.Task;
    }
}
