using System.Security.Cryptography.X509Certificates;
using SystemContainers.Api;
using SystemContainers.Engine.Remote;

namespace SystemContainers.Daemon;

/// <summary>
/// The HTTPS listener's check before any handler: a client whose certificate is trusted passes;
/// any other may only read GET /1.0, redeem a token (POST /1.0/certificates), and, as another
/// daemon pulling, fetch an image or a container with a single-use secret for it
/// (GET /1.0/images/{fingerprint}/export?secret=, GET /1.0/operations/{id}/stream?secret=), and
/// answer a live move with the control secret its stream carried (POST /1.0/operations/{id}/control?secret=); it
/// gets 403 for everything else. Trusted requests are tracked by fingerprint while they run, so a revocation
/// aborts its client's open streams (events, exec websockets) as well as refusing its next request.
/// </summary>
public sealed class TrustGate
{
    private const string UntrustedKey = "systemcontainers.untrusted";
    private const string MigrationKey = "systemcontainers.migration";
    private readonly RemoteAccess _remote;
    private readonly ImageSecrets _imageSecrets;
    private readonly MigrationSources _migrations;
    private readonly Dictionary<string, HashSet<HttpContext>> _open = [];
    // The request being handled on this flow: a client that revokes itself still gets its answer.
    private readonly AsyncLocal<HttpContext?> _current = new();

    public TrustGate(RemoteAccess remote, ImageSecrets imageSecrets, MigrationSources migrations)
    {
        _remote = remote;
        _imageSecrets = imageSecrets;
        _migrations = migrations;
        remote.Trust.Revoked += client => Abort(client.Fingerprint);
    }

    /// <summary>True when the request came over HTTPS from a certificate the daemon does not trust.</summary>
    public static bool IsUntrusted(HttpContext context) => context.Items.ContainsKey(UntrustedKey);

    /// <summary>The migration whose secret the gate used up to let this untrusted request in; null otherwise.</summary>
    public static MigrationSource? RedeemedMigration(HttpContext context) => context.Items.TryGetValue(MigrationKey, out var m) ? m as MigrationSource : null;

    public static X509Certificate2? ClientCertificate(HttpContext context) => context.Connection.ClientCertificate;

    public async Task Check(HttpContext context, Func<Task> next)
    {
        var certificate = ClientCertificate(context);
        string? fingerprint = certificate is null ? null : CertificateFingerprint.Of(certificate);
        if (fingerprint is not null && _remote.Trust.IsTrusted(fingerprint))
        {
            Track(fingerprint, context, add: true);
            _current.Value = context;
            try { await next(); }
            finally { Track(fingerprint, context, add: false); }
            return;
        }
        context.Items[UntrustedKey] = true;
        var request = context.Request;
        bool open = (HttpMethods.IsGet(request.Method) && request.Path == "/1.0")
            || (HttpMethods.IsPost(request.Method) && request.Path == "/1.0/certificates");
        if (open || RedeemsImageSecret(request) || RedeemsMigrationSecret(context))
        {
            await next();
            return;
        }
        string why = IsImageExport(request, out _)
            ? "the image secret is unknown, already used, expired or for another image"
            : IsMigrationStream(request, out _) || IsMigrationControl(request, out _) ? "the migration secret is unknown, already used, expired or for another operation"
            : certificate is null ? "no client certificate was presented" : $"client certificate {fingerprint} is not trusted";
        await Results.Json(new ApiResponse("error", ErrorCode: 403, Error: $"{request.Method} {request.Path}: {why}; join with a trust token (Add-SystemContainerRemote)",
            ErrorId: "Untrusted"), Wire.Json, statusCode: 403).ExecuteAsync(context);
    }

    private bool RedeemsImageSecret(HttpRequest request) =>
        IsImageExport(request, out string image) && request.Query["secret"].ToString() is { Length: > 0 } secret && _imageSecrets.Redeem(image, secret);

    private bool RedeemsMigrationSecret(HttpContext context)
    {
        if (context.Request.Query["secret"].ToString() is not { Length: > 0 } secret) return false;
        var source = IsMigrationStream(context.Request, out string operation) ? _migrations.Redeem(operation, secret)
            : IsMigrationControl(context.Request, out operation) ? _migrations.RedeemControl(operation, secret) : null;
        if (source is null) return false;
        context.Items[MigrationKey] = source;
        return true;
    }

    private static bool IsImageExport(HttpRequest request, out string image) => IsGetOf(request, "images", "export", out image);

    private static bool IsMigrationStream(HttpRequest request, out string operation) => IsGetOf(request, "operations", "stream", out operation);

    private static bool IsMigrationControl(HttpRequest request, out string operation) =>
        IsOf(request, HttpMethods.Post, "operations", "control", out operation);

    /// <summary>GET /1.0/{collection}/{id}/{leaf}: one of the fetches a secret may open.</summary>
    private static bool IsGetOf(HttpRequest request, string collection, string leaf, out string id) => IsOf(request, HttpMethods.Get, collection, leaf, out id);

    private static bool IsOf(HttpRequest request, string method, string collection, string leaf, out string id)
    {
        id = "";
        if (request.Method != method || request.Path.Value?.Split('/') is not ["", "1.0", var c, var item, var l] || c != collection || l != leaf) return false;
        id = item;
        return true;
    }

    private void Track(string fingerprint, HttpContext context, bool add)
    {
        lock (_open)
        {
            if (add)
            {
                if (!_open.TryGetValue(fingerprint, out var set)) _open[fingerprint] = set = [];
                set.Add(context);
            }
            else if (_open.TryGetValue(fingerprint, out var set) && set.Remove(context) && set.Count == 0)
            {
                _open.Remove(fingerprint);
            }
        }
    }

    private void Abort(string fingerprint)
    {
        List<HttpContext> contexts;
        lock (_open) contexts = _open.Remove(fingerprint, out var set) ? [.. set.Where(c => c != _current.Value)] : [];
        foreach (var context in contexts) context.Abort();
        if (contexts.Count > 0) DaemonLog.Info($"revoked {fingerprint}: closed {contexts.Count} open request(s)");
    }
}
