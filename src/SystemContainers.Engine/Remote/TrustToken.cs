using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace SystemContainers.Engine.Remote;

/// <summary>
/// A single-use invitation for one client (LXD's trust token): the client learns from it where the
/// server listens and which certificate it must present, and proves with the secret that the server's
/// admin invited it. The server keeps only the secret's hash (<see cref="TrustStore"/>).
/// </summary>
public sealed record TrustToken(string ClientName, string ServerFingerprint, IReadOnlyList<string> Addresses, string Secret, DateTimeOffset ExpiresAt)
{
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromHours(1);

    /// <summary>What the admin copies to the client: base64url of the token's JSON.</summary>
    public string Encode() => Convert.ToBase64String(JsonSerializer.SerializeToUtf8Bytes(this, Json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static TrustToken Decode(string text)
    {
        TrustToken? token = null;
        try
        {
            string b64 = text.Trim().Replace('-', '+').Replace('_', '/');
            token = JsonSerializer.Deserialize<TrustToken>(Convert.FromBase64String(b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=')), Json);
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
        }
        if (token is null || string.IsNullOrEmpty(token.Secret) || !CertificateFingerprint.IsWellFormed(token.ServerFingerprint ?? "") || token.Addresses is null)
            throw EngineException.Invalid("InvalidToken", "the trust token is not one New-SystemContainerTrustToken made (cut short or mistyped?)");
        return token;
    }

    public static string NewSecret() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    /// <summary>How the server stores a secret: its SHA-256, so a copy of trust.json redeems nothing.</summary>
    public static string HashOf(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
}
