using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Remote;

namespace SystemContainers.Daemon;

/// <summary>
/// The host and trust endpoints: GET/PATCH /1.0 (the host, its fingerprint, core.https_address),
/// /1.0/certificates (trusted clients, token redemption) and /1.0/certificates/tokens.
/// </summary>
public sealed class RemoteApi(RemoteAccess remote, RestApi api, Func<HttpsListener> listener)
{
    public void Map(WebApplication app)
    {
        app.MapGet("/1.0", (HttpContext ctx) => RestApi.Sync(TrustGate.IsUntrusted(ctx)
            ? new SystemContainerHost { Auth = "untrusted", ServerFingerprint = remote.Fingerprint }
            : api.HostInfo() with
            {
                ServerFingerprint = remote.Fingerprint, Config = new(remote.Config.Values),
                Addresses = remote.Endpoint is { } listening ? [.. HttpsEndpoint.Advertised(listening)] : [],
            }));
        app.MapPatch("/1.0", async (HttpContext ctx) =>
        {
            var req = await RestApi.Body<HostUpdateRequest>(ctx);
            var unknown = req.Config?.Keys.FirstOrDefault(k => k != ServerConfig.HttpsAddressKey);
            if (req.Config is null || req.Config.Count == 0 || unknown is not null)
                throw EngineException.Invalid("InvalidRequest", $"config must set {ServerConfig.HttpsAddressKey}{(unknown is null ? "" : $", not '{unknown}'")}");
            string address = req.Config[ServerConfig.HttpsAddressKey];
            if (address.Length > 0) HttpsEndpoint.Parse(address);
            // A request over HTTPS must be answered before its own listener stops.
            if (ctx.Request.IsHttps) ctx.Response.OnCompleted(() => Apply(address));
            else await Apply(address);
            return RestApi.Sync(new Dictionary<string, string>(remote.Config.Values) { [ServerConfig.HttpsAddressKey] = address });
        });

        app.MapGet("/1.0/certificates", () => RestApi.Sync(remote.Trust.Clients.Select(ToApi).ToList()));
        app.MapGet("/1.0/certificates/{fingerprint}", (string fingerprint) => RestApi.Sync(ToApi(
            remote.Trust.Clients.FirstOrDefault(c => c.Fingerprint == fingerprint.ToLowerInvariant())
                ?? throw EngineException.NotFound("TrustNotFound", $"no trusted client has fingerprint '{fingerprint}'"))));
        app.MapDelete("/1.0/certificates/{fingerprintOrName}", (string fingerprintOrName) => RestApi.Sync(ToApi(remote.Trust.Remove(fingerprintOrName))));
        app.MapPost("/1.0/certificates", async (HttpContext ctx) =>
        {
            var req = await RestApi.Body<TrustRedeemRequest>(ctx);
            if (string.IsNullOrEmpty(req.Token)) throw EngineException.Invalid("InvalidRequest", "request field 'token' is required");
            var trusted = remote.Redeem(req.Token, TrustGate.ClientCertificate(ctx));
            DaemonLog.Info($"trusted client '{trusted.Name}' ({trusted.Fingerprint})");
            return RestApi.Sync(ToApi(trusted), 201);
        });
        app.MapPost("/1.0/certificates/tokens", async (HttpContext ctx) =>
        {
            var req = await RestApi.Body<TrustTokenRequest>(ctx);
            if (req.ExpiresInSeconds is < 1 or > 30 * 24 * 3600)
                throw EngineException.Invalid("InvalidRequest", $"expiresInSeconds must be from 1 to {30 * 24 * 3600}, not {req.ExpiresInSeconds}");
            var token = remote.IssueToken(req.ClientName ?? "", req.ExpiresInSeconds is int s ? TimeSpan.FromSeconds(s) : null);
            return RestApi.Sync(new SystemContainerTrustToken
            {
                ClientName = token.ClientName, Token = token.Encode(), ServerFingerprint = token.ServerFingerprint,
                Addresses = [.. token.Addresses], ExpiresAt = token.ExpiresAt,
            }, 201);
        });
    }

    /// <summary>Listens on address first and keeps it only once that worked, so a bad address is refused, not remembered.</summary>
    public async Task Apply(string address)
    {
        await listener().ApplyAsync(address);
        remote.Config.SetHttpsAddress(address);
    }

    private static SystemContainerTrust ToApi(TrustedClient c) =>
        new() { Name = c.Name, Fingerprint = c.Fingerprint, Certificate = c.Certificate, AddedAt = c.AddedAt };
}
