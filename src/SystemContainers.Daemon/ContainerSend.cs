using SystemContainers.Engine;
using SystemContainers.Engine.Containers;

namespace SystemContainers.Daemon;

/// <summary>
/// GET /1.0/operations/{id}/stream?secret=: the source daemon's half of a container's transfer to
/// another daemon. The body is the container's backup tarball (ExportContainer: config, snapshots,
/// rootfs), as btrfs send streams when the puller asks for them (?optimized=1) and the container is
/// in a btrfs pool; its SHA-256 follows as an HTTP/2 trailer, which the puller checks before it
/// keeps anything. The migration operation ends as the send did.
/// </summary>
public static class ContainerSend
{
    /// <summary>The trailer that carries the stream's SHA-256, lower-case hex.</summary>
    public const string ChecksumTrailer = "x-systemcontainers-sha256";

    /// <summary>Bytes sent before the test hook "migration-sent-part": the puller has begun receiving by then.</summary>
    private const long PartBytes = 64 * 1024;

    private const int SendBufferBytes = 1024 * 1024;

    public static async Task RunAsync(ContainerService containers, MigrationSource source, bool optimizedAsked, HttpContext ctx)
    {
        try
        {
            if (!ctx.Response.SupportsTrailers())
                throw EngineException.Invalid("Http2Required", "a container's stream carries its SHA-256 in an HTTP/2 trailer: fetch it over HTTP/2");
            var pool = containers.Storage.Get(containers.Get(source.Container).StoragePool).Pool;
            bool optimized = optimizedAsked && pool.Driver == "btrfs";
            using var export = await containers.ExportAsync(source.Container, new ExportOptions(source.IncludeSnapshots, optimized, BackupCompression.None), ctx.RequestAborted);
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
            DaemonLog.Info($"sent container {source.Container}: {body.Bytes} bytes{(optimized ? " (btrfs send)" : "")}, SHA-256 {body.Sha256}");
            source.Sent.TrySetResult(new Dictionary<string, object> { ["bytes"] = body.Bytes, ["sha256"] = body.Sha256, ["optimized"] = optimized });
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
}
