using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// A daemon this user reaches over HTTPS (Get-SystemContainerRemote), with the server certificate it
/// pinned; or "local", the daemon on this host's unix socket.
/// </summary>
public sealed record SystemContainerRemote(string Name, string Address, string ServerFingerprint, string[] Addresses)
{
    /// <summary>True for the remote that cmdlets given no -Remote act on (Set-SystemContainerRemote -Default).</summary>
    [System.Text.Json.Serialization.JsonIgnore] public bool Default { get; init; }
}

/// <summary>
/// The user's remotes and client certificate, under $XDG_CONFIG_HOME/systemcontainers (else
/// ~/.config/systemcontainers): remotes.json, config.json (the default remote), client.crt and
/// client.key (0600, the directory 0700). One client per remote is kept open for the session.
/// "local" names the daemon on this host's socket: it is the default until another is chosen.
/// </summary>
internal static class RemoteStore
{
    private static readonly object Gate = new();
    private static readonly Dictionary<string, SystemContainersClient> Clients = new(StringComparer.Ordinal);
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string Directory
    {
        get
        {
            string? xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            string root = string.IsNullOrEmpty(xdg) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config") : xdg;
            return Path.Combine(root, "systemcontainers");
        }
    }

    public const string Local = "local";

    private static string RemotesFile => Path.Combine(Directory, "remotes.json");

    private static string ConfigFile => Path.Combine(Directory, "config.json");

    /// <summary>The remote cmdlets given no -Remote act on; null for the local daemon.</summary>
    public static string? DefaultRemote
    {
        get
        {
            if (!File.Exists(ConfigFile)) return null;
            string? name = JsonSerializer.Deserialize<Config>(File.ReadAllBytes(ConfigFile), Json)?.DefaultRemote;
            return name is null || name == Local ? null : name;
        }
    }

    /// <summary>The remote a -Remote value names: the default for none, null for the local daemon.</summary>
    public static string? Resolve(string? remote) => string.IsNullOrEmpty(remote) ? DefaultRemote : remote == Local ? null : remote;

    /// <summary>Makes name ("local" or a remote's) the default remote.</summary>
    public static void SetDefault(string name)
    {
        if (name != Local && !List().Any(r => r.Name == name))
            throw NotFound(name);
        lock (Gate) WritePrivateAtomic(ConfigFile, JsonSerializer.SerializeToUtf8Bytes(new Config(name), Json));
    }

    /// <summary>Every remote, "local" first, with the default marked.</summary>
    public static List<SystemContainerRemote> ListWithLocal()
    {
        string current = DefaultRemote ?? Local;
        return [.. new[] { new SystemContainerRemote(Local, $"unix:{DaemonConnection.SocketPath}", "", []) }.Concat(List())
            .Select(r => r with { Default = r.Name == current })];
    }

    public static List<SystemContainerRemote> List() =>
        File.Exists(RemotesFile) ? JsonSerializer.Deserialize<List<SystemContainerRemote>>(File.ReadAllBytes(RemotesFile), Json) ?? [] : [];

    /// <summary>The client for a remote by name; an unknown name is a 404-like API error, as a missing container is.</summary>
    public static SystemContainersClient Client(string name)
    {
        lock (Gate)
        {
            if (Clients.TryGetValue(name, out var open)) return open;
            var remote = List().FirstOrDefault(r => r.Name == name)
                ?? throw NotFound(name);
            var client = new SystemContainersClient(remote.Name, remote.Address, ClientCertificate(), remote.ServerFingerprint);
            Clients[name] = client;
            return client;
        }
    }

    /// <summary>
    /// Redeems a token with the server at each address it names until one answers with the pinned
    /// certificate, then keeps the remote under name.
    /// </summary>
    public static SystemContainerRemote Add(string name, string token, CancellationToken ct)
    {
        if (name == Local)
            throw new SystemContainersApiException(409, "RemoteExists", $"'{Local}' names this host's daemon; choose another name for the remote");
        var invitation = Decode(token);
        if (List().Any(r => r.Name == name))
            throw new SystemContainersApiException(409, "RemoteExists", $"a remote named '{name}' exists; remove it first");
        var certificate = ClientCertificate();
        SystemContainersApiException? last = null;
        foreach (var address in invitation.Addresses)
        {
            using var client = new SystemContainersClient(name, address, certificate, invitation.ServerFingerprint);
            try
            {
                client.RedeemTrustTokenAsync(token, ct).GetAwaiter().GetResult();
            }
            catch (SystemContainersApiException e) when (e.StatusCode == 503)
            {
                last = e;
                continue;
            }
            var remote = new SystemContainerRemote(name, address, invitation.ServerFingerprint, invitation.Addresses);
            lock (Gate) Save([.. List(), remote]);
            return remote;
        }
        throw last ?? new SystemContainersApiException(400, "InvalidToken", "the trust token names no address to reach its server at");
    }

    public static void Remove(string name)
    {
        lock (Gate)
        {
            Save([.. List().Where(r => r.Name != name)]);
            if (Clients.Remove(name, out var client)) client.Dispose();
            // A default that is gone would make every cmdlet without -Remote fail: local takes over.
            if (DefaultRemote == name) WritePrivateAtomic(ConfigFile, JsonSerializer.SerializeToUtf8Bytes(new Config(Local), Json));
        }
    }

    private static void Save(List<SystemContainerRemote> remotes) => WritePrivateAtomic(RemotesFile, JsonSerializer.SerializeToUtf8Bytes(remotes, Json));

    private static void WritePrivateAtomic(string path, byte[] bytes)
    {
        EnsureDirectory();
        string tmp = path + ".tmp";
        File.WriteAllBytes(tmp, bytes);
        File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(tmp, path, overwrite: true);
    }

    private static SystemContainersApiException NotFound(string name) =>
        new(404, "RemoteNotFound", $"no remote named '{name}' (Get-SystemContainerRemote lists them; Add-SystemContainerRemote adds one)");

    private sealed record Config(string? DefaultRemote);

    private static void EnsureDirectory()
    {
        System.IO.Directory.CreateDirectory(Directory);
        File.SetUnixFileMode(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>This user's client certificate (ECDSA P-384, self-signed), made on first use.</summary>
    private static X509Certificate2 ClientCertificate()
    {
        string crt = Path.Combine(Directory, "client.crt"), key = Path.Combine(Directory, "client.key");
        if (!File.Exists(crt) || !File.Exists(key))
        {
            EnsureDirectory();
            using var ecdsa = ECDsa.Create(ECCurve.NamedCurves.nistP384);
            var request = new CertificateRequest($"CN={Environment.UserName}@{Environment.MachineName}", ecdsa, HashAlgorithmName.SHA384);
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], false));
            using var made = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(10));
            WritePrivate(key, ecdsa.ExportPkcs8PrivateKeyPem());
            WritePrivate(crt, made.ExportCertificatePem());
        }
        // SslStream on Linux wants the key in a certificate it can use directly: a PKCS#12 round trip gives one.
        using var pem = X509Certificate2.CreateFromPemFile(crt, key);
        return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
    }

    private static void WritePrivate(string path, string text)
    {
        using var stream = new FileStream(path, new FileStreamOptions
        {
            Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        stream.Write(Encoding.ASCII.GetBytes(text));
    }

    /// <summary>What a client reads of a trust token (the server checks the rest): where to go and which certificate to accept.</summary>
    private static Invitation Decode(string token)
    {
        try
        {
            string b64 = token.Trim().Replace('-', '+').Replace('_', '/');
            var invitation = JsonSerializer.Deserialize<Invitation>(Convert.FromBase64String(b64.PadRight(b64.Length + (4 - b64.Length % 4) % 4, '=')), Json);
            if (invitation is { ServerFingerprint.Length: 64, Addresses: not null }) return invitation;
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
        }
        throw new SystemContainersApiException(400, "InvalidToken", "the trust token is not one New-SystemContainerTrustToken made (cut short or mistyped?)");
    }

    private sealed record Invitation(string ServerFingerprint, string[] Addresses);
}
