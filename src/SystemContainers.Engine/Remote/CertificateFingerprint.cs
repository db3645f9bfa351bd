using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace SystemContainers.Engine.Remote;

/// <summary>A certificate's identity as LXD names it: the SHA-256 of its DER encoding, lower-case hex.</summary>
public static class CertificateFingerprint
{
    public static string Of(X509Certificate2 certificate) => Convert.ToHexStringLower(SHA256.HashData(certificate.RawData));

    /// <summary>True for a string shaped like a fingerprint (64 hex digits); case is ignored.</summary>
    public static bool IsWellFormed(string value) => value.Length == 64 && value.All(Uri.IsHexDigit);
}
