using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SystemContainers.Engine.Remote;

namespace SystemContainers.Engine.Tests;

public class ServerCertificateTests
{
    [Fact]
    public void IsMadeOnceAsP384AndKeptPrivate()
    {
        using var dir = new TempDir();
        using var first = ServerCertificate.LoadOrCreate(dir.Path);
        using var again = ServerCertificate.LoadOrCreate(dir.Path);

        Assert.Equal(CertificateFingerprint.Of(first), CertificateFingerprint.Of(again));
        using var key = again.GetECDsaPublicKey()!;
        Assert.Equal(384, key.KeySize);
        Assert.True(again.HasPrivateKey);
        foreach (var file in new[] { "server.crt", "server.key" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.Combine(file)));
    }

    [Fact]
    public void FingerprintIsSha256OfTheDer()
    {
        using var cert = ServerCertificate.Create("x", TimeSpan.FromDays(1));
        string fp = CertificateFingerprint.Of(cert);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(cert.RawData)), fp);
        Assert.True(CertificateFingerprint.IsWellFormed(fp));
        Assert.False(CertificateFingerprint.IsWellFormed(fp[..63] + "g"));
    }

    [Fact]
    public void ADamagedKeyIsReportedNotReplaced()
    {
        using var dir = new TempDir();
        ServerCertificate.LoadOrCreate(dir.Path).Dispose();
        File.WriteAllText(dir.Combine("server.key"), "garbage");
        var e = Assert.Throws<EngineException>(() => ServerCertificate.LoadOrCreate(dir.Path));
        Assert.Equal("DamagedState", e.Reason);
        Assert.Equal("garbage", File.ReadAllText(dir.Combine("server.key")));
    }
}

public class TrustTokenTests
{
    [Fact]
    public void RoundTripsThroughItsText()
    {
        var token = new TrustToken("laptop", new string('a', 64), ["10.0.0.1:8443"], TrustToken.NewSecret(), DateTimeOffset.UnixEpoch);
        var back = TrustToken.Decode(token.Encode());
        Assert.Equal(token.Secret, back.Secret);
        Assert.Equal(token.ServerFingerprint, back.ServerFingerprint);
        Assert.Equal(["10.0.0.1:8443"], back.Addresses);
        Assert.Equal("laptop", back.ClientName);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not a token")]
    [InlineData("eyJ4IjoxfQ")]
    public void RefusesWhatIsNotAToken(string text) =>
        Assert.Equal("InvalidToken", Assert.Throws<EngineException>(() => TrustToken.Decode(text)).Reason);
}

public class TrustStoreTests
{
    private static readonly string ServerFp = new('b', 64);

    [Fact]
    public void ATokenTrustsOneCertificateOnceAndKeepsOnlyItsHash()
    {
        using var dir = new TempDir();
        var store = new TrustStore(dir.Path);
        var token = store.IssueToken("laptop", ServerFp, ["10.0.0.1:8443"], TimeSpan.FromHours(1));
        string json = File.ReadAllText(dir.Combine("trust.json"));
        Assert.DoesNotContain(token.Secret, json);
        Assert.Contains(TrustToken.HashOf(token.Secret), json);

        using var client = ServerCertificate.Create("laptop", TimeSpan.FromDays(1));
        var trusted = store.Redeem(token.Secret, client);
        Assert.Equal(CertificateFingerprint.Of(client), trusted.Fingerprint);
        Assert.True(store.IsTrusted(trusted.Fingerprint));

        using var other = ServerCertificate.Create("thief", TimeSpan.FromDays(1));
        var reused = Assert.Throws<EngineException>(() => store.Redeem(token.Secret, other));
        Assert.Equal(("TokenInvalid", FailureKind.Forbidden), (reused.Reason, reused.Kind));
        Assert.False(store.IsTrusted(CertificateFingerprint.Of(other)));

        // Kept across restarts.
        var reread = new TrustStore(dir.Path);
        Assert.Equal(["laptop"], reread.Clients.Select(c => c.Name));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.Combine("trust.json")));
    }

    [Fact]
    public void AnExpiredTokenIsRefusedAndForgotten()
    {
        using var dir = new TempDir();
        var now = DateTimeOffset.UtcNow;
        var store = new TrustStore(dir.Path, () => now);
        var token = store.IssueToken("laptop", ServerFp, [], TimeSpan.FromMinutes(5));
        now += TimeSpan.FromMinutes(6);
        using var client = ServerCertificate.Create("laptop", TimeSpan.FromDays(1));
        Assert.Equal("TokenExpired", Assert.Throws<EngineException>(() => store.Redeem(token.Secret, client)).Reason);
        Assert.Equal("TokenInvalid", Assert.Throws<EngineException>(() => store.Redeem(token.Secret, client)).Reason);
        Assert.DoesNotContain(TrustToken.HashOf(token.Secret), File.ReadAllText(dir.Combine("trust.json")));
        // The name is free again.
        store.IssueToken("laptop", ServerFp, [], TimeSpan.FromMinutes(5));
    }

    [Fact]
    public void NamesAreUniqueAndChecked()
    {
        using var dir = new TempDir();
        var store = new TrustStore(dir.Path);
        store.IssueToken("laptop", ServerFp, [], TimeSpan.FromHours(1));
        Assert.Equal("TrustNameExists", Assert.Throws<EngineException>(() => store.IssueToken("laptop", ServerFp, [], TimeSpan.FromHours(1))).Reason);
        Assert.Equal("InvalidName", Assert.Throws<EngineException>(() => store.IssueToken("a\nb", ServerFp, [], TimeSpan.FromHours(1))).Reason);
        Assert.Equal("InvalidName", Assert.Throws<EngineException>(() => store.IssueToken(" ", ServerFp, [], TimeSpan.FromHours(1))).Reason);
    }

    [Fact]
    public void RemovingByNameOrFingerprintRevokes()
    {
        using var dir = new TempDir();
        var store = new TrustStore(dir.Path);
        var revoked = new List<string>();
        store.Revoked += c => revoked.Add(c.Name);
        using var a = ServerCertificate.Create("a", TimeSpan.FromDays(1));
        using var b = ServerCertificate.Create("b", TimeSpan.FromDays(1));
        var ta = store.Redeem(store.IssueToken("a", ServerFp, [], TimeSpan.FromHours(1)).Secret, a);
        store.Redeem(store.IssueToken("b", ServerFp, [], TimeSpan.FromHours(1)).Secret, b);

        store.Remove(ta.Fingerprint.ToUpperInvariant());
        store.Remove("b");
        Assert.Equal(["a", "b"], revoked);
        Assert.Empty(new TrustStore(dir.Path).Clients);
        Assert.Equal("TrustNotFound", Assert.Throws<EngineException>(() => store.Remove("a")).Reason);
    }
}

public class ServerConfigTests
{
    [Fact]
    public void KeepsTheHttpsAddressAcrossRestarts()
    {
        using var dir = new TempDir();
        Assert.Equal("", new ServerConfig(dir.Path).HttpsAddress);
        new ServerConfig(dir.Path).SetHttpsAddress("192.0.2.2:8443");
        Assert.Equal("192.0.2.2:8443", new ServerConfig(dir.Path).Values[ServerConfig.HttpsAddressKey]);
        var config = new ServerConfig(dir.Path);
        Assert.Equal("InvalidAddress", Assert.Throws<EngineException>(() => config.SetHttpsAddress("host2")).Reason);
        Assert.Equal("192.0.2.2:8443", new ServerConfig(dir.Path).HttpsAddress);
        config.SetHttpsAddress("");
        Assert.Equal("", new ServerConfig(dir.Path).HttpsAddress);
    }

    [Theory]
    [InlineData("192.0.2.2:9000", "192.0.2.2:9000")]
    [InlineData("192.0.2.2", "192.0.2.2:8443")]
    [InlineData("[::1]:9000", "[::1]:9000")]
    [InlineData("::", "[::]:8443")]
    public void ParsesListenAddresses(string text, string expected) => Assert.Equal(expected, HttpsEndpoint.Parse(text).ToString());

    [Fact]
    public void AWildcardAdvertisesTheHostsAddresses()
    {
        var advertised = HttpsEndpoint.Advertised(new IPEndPoint(IPAddress.Any, 8443));
        Assert.Contains("127.0.0.1:8443", advertised);
        Assert.Equal(["192.0.2.2:8443"], HttpsEndpoint.Advertised(IPEndPoint.Parse("192.0.2.2:8443")));
    }
}
