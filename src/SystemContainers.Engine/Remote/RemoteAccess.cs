using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace SystemContainers.Engine.Remote;

/// <summary>
/// Everything HTTPS access needs, made from the state directory: the server certificate, the
/// trust store and the kept listen address. The daemon's listener asks it who is trusted; the
/// REST API's certificate and config endpoints call it.
/// </summary>
public sealed class RemoteAccess : IDisposable
{
    public RemoteAccess(string stateDir, Func<DateTimeOffset>? now = null)
    {
        Certificate = ServerCertificate.LoadOrCreate(stateDir);
        Fingerprint = CertificateFingerprint.Of(Certificate);
        Trust = new TrustStore(stateDir, now);
        Config = new ServerConfig(stateDir);
    }

    public X509Certificate2 Certificate { get; }

    public string Fingerprint { get; }

    public TrustStore Trust { get; }

    public ServerConfig Config { get; }

    /// <summary>The address the listener binds; null while it is off.</summary>
    public IPEndPoint? Endpoint => Config.HttpsAddress.Length == 0 ? null : HttpsEndpoint.Parse(Config.HttpsAddress);

    /// <summary>A token for clientName that names this server's certificate and the addresses it listens on.</summary>
    public TrustToken IssueToken(string clientName, TimeSpan? lifetime)
    {
        var endpoint = Endpoint ?? throw EngineException.Conflict("HttpsOff",
            $"the daemon does not listen on HTTPS, so no client could redeem a token; set {ServerConfig.HttpsAddressKey} first (Set-SystemContainerHost -HttpsAddress)");
        return Trust.IssueToken(clientName, Fingerprint, HttpsEndpoint.Advertised(endpoint), lifetime ?? TrustToken.DefaultLifetime);
    }

    /// <summary>Trusts the certificate a client presented with the token it was given.</summary>
    public TrustedClient Redeem(string token, X509Certificate2? client)
    {
        if (client is null) throw new EngineException(FailureKind.Forbidden, "ClientCertificateMissing", "redeeming a trust token needs a client certificate on the TLS connection");
        var decoded = TrustToken.Decode(token);
        if (decoded.ServerFingerprint != Fingerprint)
            throw new EngineException(FailureKind.Forbidden, "TokenInvalid", "the trust token was made by another server");
        return Trust.Redeem(decoded.Secret, client);
    }

    public void Dispose() => Certificate.Dispose();
}
