using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;

namespace SystemContainers.Api;

public sealed partial class SystemContainersClient
{
    /// <summary>
    /// A client for a remote daemon over mutual TLS 1.3: it presents clientCertificate and accepts
    /// only the server certificate whose SHA-256 is serverFingerprint (pinned when the remote was
    /// added), whatever any CA says, so a server with another certificate is refused at the handshake.
    /// </summary>
    public SystemContainersClient(string remoteName, string address, X509Certificate2 clientCertificate, string serverFingerprint)
    {
        RemoteName = remoteName;
        SocketPath = "";
        Target = $"https://{address}";
        _base = new Uri($"https://{address}/");
        _webSocketBase = new Uri($"wss://{address}/");
        _handler = PinnedTlsHandler(serverFingerprint, clientCertificate);
        _handler.PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5);
        // Websockets are streams that stay open: past the server's stream limit a second connection opens rather than requests queueing.
        _handler.EnableMultipleHttp2Connections = true;
        // HTTP/2 (ALPN): requests and websockets are streams of the session's pooled TLS connections, so none pays a handshake of its own.
        _http = new HttpClient(_handler, disposeHandler: false)
        {
            BaseAddress = _base, Timeout = Timeout.InfiniteTimeSpan,
            DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
    }

    /// <summary>The remote's name; null for the local daemon's socket unless it was given one. Objects this client returns carry it.</summary>
    public string? RemoteName { get; }

    /// <summary>
    /// A TLS 1.3 handler that accepts only the server certificate whose SHA-256 is serverFingerprint,
    /// whatever any CA says, and presents clientCertificate when one is given: how a client reaches
    /// a remote, and how a daemon pulls from another.
    /// </summary>
    public static SocketsHttpHandler PinnedTlsHandler(string serverFingerprint, X509Certificate2? clientCertificate = null)
    {
        var tls = new SslClientAuthenticationOptions
        {
            EnabledSslProtocols = SslProtocols.Tls13,
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                certificate is not null && FingerprintOf(certificate.GetRawCertData()) == serverFingerprint,
        };
        if (clientCertificate is not null)
        {
            tls.ClientCertificates = [clientCertificate];
            tls.LocalCertificateSelectionCallback = (_, _, _, _, _) => clientCertificate;
        }
        return new SocketsHttpHandler { SslOptions = tls, ConnectTimeout = TimeSpan.FromSeconds(15) };
    }

    /// <summary>SHA-256 of a certificate's DER, lower-case hex: how servers and clients name certificates.</summary>
    public static string FingerprintOf(byte[] der) => Convert.ToHexStringLower(SHA256.HashData(der));

    public Task<List<SystemContainerTrust>> ListTrustAsync(CancellationToken ct = default) =>
        SendAsync<List<SystemContainerTrust>>(HttpMethod.Get, "1.0/certificates", null, ct);

    public Task<SystemContainerTrust> RemoveTrustAsync(string fingerprintOrName, CancellationToken ct = default) =>
        SendAsync<SystemContainerTrust>(HttpMethod.Delete, $"1.0/certificates/{Esc(fingerprintOrName)}", null, ct);

    public Task<SystemContainerTrustToken> NewTrustTokenAsync(TrustTokenRequest request, CancellationToken ct = default) =>
        SendAsync<SystemContainerTrustToken>(HttpMethod.Post, "1.0/certificates/tokens", request, ct);

    /// <summary>Asks the remote to trust this client's certificate, proving the invitation with the token.</summary>
    public Task<SystemContainerTrust> RedeemTrustTokenAsync(string token, CancellationToken ct = default) =>
        SendAsync<SystemContainerTrust>(HttpMethod.Post, "1.0/certificates", new TrustRedeemRequest(token), ct);

    /// <summary>
    /// A single-use secret with which another daemon may fetch this image from this one without
    /// being trusted (POST /1.0/images/{fingerprint}/secret); the operation holding it runs until
    /// the secret is used, expires or is cancelled, so it is not waited for.
    /// </summary>
    public async Task<(string OperationId, string Secret)> CreateImageSecretAsync(string fingerprint, int? expiresInSeconds, CancellationToken ct = default)
    {
        string path = $"1.0/images/{Esc(fingerprint)}/secret";
        return SecretOf(await SendRawAsync(HttpMethod.Post, path, new ImageSecretRequest(expiresInSeconds), ct), path);
    }

    /// <summary>
    /// The migration operation (POST /1.0/containers/{name} with migration: true) whose single-use
    /// secret lets another daemon pull this stopped container, with its snapshots when asked; it
    /// runs until that daemon has fetched it, the secret expires or it is cancelled.
    /// </summary>
    public async Task<(string OperationId, string Secret)> CreateMigrationSourceAsync(string name, bool includeSnapshots, CancellationToken ct = default, bool live = false)
    {
        string path = $"1.0/containers/{Esc(name)}";
        return SecretOf(await SendRawAsync(HttpMethod.Post, path, new ContainerPostRequest(Migration: true, InstanceOnly: !includeSnapshots, Live: live), ct), path);
    }

    /// <summary>Waits for operation id to end; its failure is thrown as a request's would be.</summary>
    public async Task AwaitOperationAsync(string id, CancellationToken ct = default)
    {
        for (var done = await WaitOperationAsync(id, 3600, ct); ; done = await WaitOperationAsync(id, 3600, ct))
        {
            if (done.Status == "Success") return;
            if (done.Status is "Failure" or "Cancelled")
                throw new SystemContainersApiException(done.StatusCode, done.ErrId ?? "OperationFailed", done.Err ?? $"operation {done.Id} failed");
        }
    }

    private (string OperationId, string Secret) SecretOf(ApiResponse response, string path)
    {
        var op = Deserialize<Operation>(response.Metadata);
        string? secret = op?.Metadata is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty("secret", out var s) ? s.GetString() : null;
        return (op?.Id ?? "", secret ?? throw new SystemContainersApiException(502, "BadResponse", $"POST /{path}: {Target} answered without a secret"));
    }

    public Task<JsonElement?> UpdateHostAsync(HostUpdateRequest request, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Patch, "1.0", request, ct);
}
