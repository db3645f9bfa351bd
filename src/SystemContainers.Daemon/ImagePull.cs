using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Remote;

namespace SystemContainers.Daemon;

/// <summary>
/// POST /1.0/images with source "pull": fetches an image from another daemon over TLS 1.3,
/// accepting only the server certificate the request names, with the single-use secret that
/// daemon issued, and imports it with the checks of any import, refusing bytes whose SHA-256 is
/// not the fingerprint asked for. An image already here is not fetched again.
/// </summary>
public static class ImagePull
{
    public static async Task<ImageRecord> RunAsync(ImageStore images, ImageCreateRequest req, IProgress<string> progress, CancellationToken ct)
    {
        var (server, fingerprint, certificate, secret) = Validate(req);
        var existing = images.List().FirstOrDefault(i => i.Fingerprint == fingerprint);
        if (existing is not null)
        {
            progress.Report("already here");
            return req.Alias is null ? existing : await images.AddAliasAsync(fingerprint, req.Alias);
        }
        using var peer = new PeerFetch(certificate);
        var url = new Uri(server, $"1.0/images/{fingerprint}/export?secret={Uri.EscapeDataString(secret)}");
        progress.Report($"connecting to {server}");
        using (var response = await peer.GetAsync(url, System.Net.HttpVersion.Version11, $"image {fingerprint[..12]} (certificate {certificate[..12]})", ct))
        {
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            return await images.ImportAsync(body, server.ToString(), fingerprint, req.Alias, req.Description ?? $"copied from {server}", progress, ct);
        }
    }

    private static (Uri Server, string Fingerprint, string Certificate, string Secret) Validate(ImageCreateRequest req)
    {
        if (!Uri.TryCreate(req.Server, UriKind.Absolute, out var server) || server.Scheme != Uri.UriSchemeHttps || server.PathAndQuery != "/" || server.UserInfo.Length > 0)
            throw EngineException.Invalid("InvalidRequest", $"request field 'server' must be https://address:port, not '{req.Server}'");
        if (!CertificateFingerprint.IsWellFormed(req.Fingerprint ?? ""))
            throw EngineException.Invalid("InvalidRequest", $"request field 'fingerprint' must be the image's full SHA-256 (64 hex digits), not '{req.Fingerprint}'");
        if (!CertificateFingerprint.IsWellFormed(req.Certificate ?? ""))
            throw EngineException.Invalid("InvalidRequest", $"request field 'certificate' must be the SHA-256 of the source's server certificate (64 hex digits), not '{req.Certificate}'");
        if (string.IsNullOrEmpty(req.Secret)) throw EngineException.Invalid("InvalidRequest", "request field 'secret' is required");
        return (server, req.Fingerprint!.ToLowerInvariant(), req.Certificate!.ToLowerInvariant(), req.Secret);
    }
}
