using System.Net;
using System.Text.RegularExpressions;
using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Remote;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Daemon;

/// <summary>
/// POST /1.0/containers with source "migration", mode "pull": the target daemon's half of a
/// container's move or copy from another daemon. Everything the request says is checked, and the
/// name must be free here, before anything is fetched; then the source's stream (ContainerSend) is
/// fetched over TLS 1.3 accepting only the certificate the request names, with the source's
/// single-use secret, and imported as a backup is (ImportContainer: staged, moved in place last),
/// its checksum (ChecksumStream) compared with the source's trailer before the container is kept. A transfer that
/// fails for any reason leaves nothing here; a daemon killed midway leaves staging its next start removes.
/// A live move's stream carries criu's images too: the container is imported with them and started,
/// which restores it, and the source is told (its control secret came with the stream) whether it
/// runs here, so it ends its frozen copy, or not, so it resumes it; a failure removes it here.
/// </summary>
public sealed partial class ContainerPull
{
    private const long ProgressStep = 16L << 20;
    private readonly Uri _stream;
    private readonly string _certificate;
    private readonly string _name;
    private readonly string? _pool;
    private readonly bool _optimized;
    private readonly bool _move;
    private readonly bool _live;

    [GeneratedRegex("^/1\\.0/operations/[0-9a-fA-F-]{1,64}\\z")]
    private static partial Regex OperationPath();

    private ContainerPull(Uri stream, string certificate, string name, string? pool, bool optimized, bool move, bool live) =>
        (_stream, _certificate, _name, _pool, _optimized, _move, _live) = (stream, certificate, name, pool, optimized, move, live);

    /// <summary>The pull a request asks for, refused now if any of it is wrong or the name is taken here.</summary>
    public static ContainerPull Plan(ContainerService containers, ContainerCreateRequest req, ContainerSource source)
    {
        if (source.Mode != "pull")
            throw EngineException.Invalid("InvalidRequest", $"migration mode '{DisplayText.Escape(source.Mode ?? "")}' is not supported: use pull");
        if (!string.IsNullOrEmpty(req.Image) || !string.IsNullOrEmpty(source.Source))
            throw EngineException.Invalid("InvalidRequest", "a migration source takes no image and no source container: the source operation names what is sent");
        if (req.Config is { Count: > 0 }) throw EngineException.Invalid("InvalidRequest", "a migrated container takes its source's config; change it once it is here");
        if (!Uri.TryCreate(source.Operation, UriKind.Absolute, out var operation) || operation.Scheme != Uri.UriSchemeHttps
            || operation.UserInfo.Length > 0 || operation.Query.Length > 0 || operation.Fragment.Length > 0 || !OperationPath().IsMatch(operation.AbsolutePath))
            throw EngineException.Invalid("InvalidRequest", $"source field 'operation' must be https://address:port/1.0/operations/ID, not '{DisplayText.Escape(source.Operation ?? "")}'");
        if (!CertificateFingerprint.IsWellFormed(source.Certificate ?? ""))
            throw EngineException.Invalid("InvalidRequest", $"source field 'certificate' must be the SHA-256 of the source's server certificate (64 hex digits), not '{DisplayText.Escape(source.Certificate ?? "")}'");
        if (source.Secrets?.GetValueOrDefault("fs") is not { Length: > 0 } secret)
            throw EngineException.Invalid("InvalidRequest", "source field 'secrets' must give the source operation's secret as 'fs'");
        if (source.Live && !source.Move)
            throw EngineException.Invalid("InvalidRequest", "a live migration is a move (move: true): the running container cannot be on both hosts");
        ContainerName.Validate(req.Name);
        if (containers.List().Any(c => c.Name == req.Name))
            throw EngineException.Conflict("ContainerExists", $"container '{req.Name}' already exists here; nothing was fetched");
        string driver = containers.Storage.Get(string.IsNullOrEmpty(req.StoragePool) ? Engine.Storage.StoragePool.DefaultName : req.StoragePool).Pool.Driver;
        var stream = new Uri(operation, $"{operation.AbsolutePath}/stream?secret={Uri.EscapeDataString(secret)}&optimized={(driver == "btrfs" ? 1 : 0)}");
        return new ContainerPull(stream, source.Certificate!.ToLowerInvariant(), req.Name, req.StoragePool, driver == "btrfs", source.Move, source.Live);
    }

    public async Task<ContainerView> RunAsync(ContainerService containers, OperationRecord op)
    {
        var ct = op.Cancellation.Token;
        using var peer = new PeerFetch(_certificate);
        op.Report($"connecting to {_stream.GetLeftPart(UriPartial.Authority)}");
        using var response = await peer.GetAsync(_stream, HttpVersion.Version20, $"container {_name} (certificate {_certificate[..12]})", ct);
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        StepTrace.Mark("pull: stream open");
        long reported = 0;
        var checksum = new ChecksumStream(body, received =>
        {
            if (received - reported < ProgressStep) return;
            reported = received;
            op.Report($"received {received >> 20} MiB{(_optimized ? "" : " (tar)")}");
        }, sum => Check(response, sum));
        string? control = null;
        if (_live && (!response.Headers.TryGetValues(ContainerSend.ControlHeader, out var values) || (control = values.FirstOrDefault()) is not { Length: > 0 }))
            throw new EngineException(FailureKind.Failed, "SourceRefused", $"the source sent container {_name} without the control secret of a live move");
        var options = new ImportOptions(_name, _pool, BackupCompression.None) { KeepHardwareAddresses = _move, WithImages = _live };
        // The tar reader reads synchronously, on a thread of its own; the response is its source.
        var made = await Task.Run(() => containers.ImportAsync(checksum, options, ct), ct);
        op.Report($"received {checksum.Bytes} bytes, {ChecksumStream.Algorithm} {checksum.Checksum}");
        DaemonLog.Info($"pulled container {_name} from {_stream.GetLeftPart(UriPartial.Authority)}: {checksum.Bytes} bytes, {ChecksumStream.Algorithm} {checksum.Checksum}");
        return _live ? await RestoreAsync(containers, peer, made, control!, op) : made;
    }

    /// <summary>A live move's end here: the imported container restored and the source told, or removed and the source told why.</summary>
    private async Task<ContainerView> RestoreAsync(ContainerService containers, PeerFetch peer, ContainerView made, string control, OperationRecord op)
    {
        var verdictUrl = new Uri(_stream, $"{_stream.AbsolutePath[..^"/stream".Length]}/control?secret={Uri.EscapeDataString(control)}");
        string what = $"the verdict on container {_name}";
        ContainerView running;
        try
        {
            op.Report("restoring");
            // Not op's token: once the stream is in, a cancel is the source's to decide (it resumes the container).
            running = await containers.StartAsync(_name, CancellationToken.None, made.Id);
        }
        catch (Exception e)
        {
            await RemoveAsync(containers, made);
            try
            {
                await peer.PostAsync(verdictUrl, new MigrationVerdict(false, e.Message), what, CancellationToken.None);
            }
            catch (EngineException told)
            {
                // The source then resumes the container when its wait for this word ends.
                DaemonLog.Failure($"telling the source that container {_name} did not start here", told);
            }
            throw;
        }
        try
        {
            await peer.PostAsync(verdictUrl, new MigrationVerdict(true), what, CancellationToken.None);
            StepTrace.Mark("live pull: verdict told");
        }
        catch
        {
            // The source did not take the word: it resumes its copy when its wait ends, so this one must go.
            await RemoveAsync(containers, running);
            throw;
        }
        DaemonLog.Info($"container {_name} moved live from {_stream.GetLeftPart(UriPartial.Authority)} runs here");
        return running;
    }

    private static async Task RemoveAsync(ContainerService containers, ContainerView made)
    {
        try
        {
            await containers.DeleteAsync(made.Name, force: true, CancellationToken.None, made.Id);
        }
        catch (EngineException e)
        {
            DaemonLog.Failure($"removal of container {made.Name} after its live move failed", e);
        }
    }

    /// <summary>At the stream's end, before the import keeps anything: the bytes must be the ones the source sent.</summary>
    private void Check(HttpResponseMessage response, string sum)
    {
        string? sent = response.TrailingHeaders.TryGetValues(ContainerSend.ChecksumTrailer, out var values) ? values.FirstOrDefault() : null;
        if (sent is null)
            throw new EngineException(FailureKind.Failed, "ChecksumMismatch", $"the stream of container {_name} ended without the source's checksum: it is incomplete");
        if (!string.Equals(sent, sum, StringComparison.OrdinalIgnoreCase))
            throw new EngineException(FailureKind.Failed, "ChecksumMismatch", $"the stream of container {_name} has {ChecksumStream.Algorithm} {sum}, not the {DisplayText.Escape(sent)} the source sent");
    }
}
