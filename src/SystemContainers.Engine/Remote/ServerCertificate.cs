using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Remote;

/// <summary>
/// The daemon's TLS identity: a self-signed ECDSA P-384 certificate made at first start and kept
/// in the state directory (server.crt, server.key, both 0600), so clients that pinned its
/// fingerprint keep trusting the daemon across restarts.
/// </summary>
public static class ServerCertificate
{
    public static X509Certificate2 LoadOrCreate(string stateDir)
    {
        string crt = Path.Combine(stateDir, "server.crt");
        string key = Path.Combine(stateDir, "server.key");
        if (File.Exists(crt) && File.Exists(key)) return Load(crt, key);
        using var made = Create($"systemcontainerd@{Environment.MachineName}", TimeSpan.FromDays(3650));
        // The key first: a certificate without its key on disk is made again on the next start.
        Sys.WriteFileAtomic(key, System.Text.Encoding.ASCII.GetBytes(made.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem()));
        Sys.WriteFileAtomic(crt, System.Text.Encoding.ASCII.GetBytes(made.ExportCertificatePem()));
        return Load(crt, key);
    }

    /// <summary>A self-signed ECDSA P-384 certificate usable for TLS as server and client (the same shape LXD uses for both).</summary>
    public static X509Certificate2 Create(string commonName, TimeSpan lifetime)
    {
        using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP384);
        var request = new CertificateRequest($"CN={commonName}", ecdsa, HashAlgorithmName.SHA384);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddMinutes(-5), now + lifetime);
    }

    private static X509Certificate2 Load(string crt, string key)
    {
        try
        {
            return X509Certificate2.CreateFromPemFile(crt, key);
        }
        catch (CryptographicException e)
        {
            throw new EngineException(FailureKind.Conflict, "DamagedState", $"cannot read the server certificate {crt} with its key {key}: {e.Message}", e);
        }
    }
}
