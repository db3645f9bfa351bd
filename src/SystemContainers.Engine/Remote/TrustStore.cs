using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Remote;

/// <summary>
/// Who may use the daemon over HTTPS (state/trust.json, replaced atomically): trusted client
/// certificates by fingerprint and name, and the hashes of the tokens not yet redeemed. A token
/// is redeemed once; an expired one is refused and forgotten. Removing a client raises
/// <see cref="Revoked"/>, so the daemon can close what that client has open.
/// </summary>
public sealed class TrustStore
{
    private const int CurrentSchema = 1;
    private const int MaxNameLength = 64;
    private readonly string _path;
    private readonly Func<DateTimeOffset> _now;
    private readonly object _gate = new();
    private Record _record;

    public TrustStore(string stateDir, Func<DateTimeOffset>? now = null)
    {
        _path = Path.Combine(stateDir, "trust.json");
        _now = now ?? (() => DateTimeOffset.UtcNow);
        _record = File.Exists(_path) ? StateStore.Read<Record>(_path, CurrentSchema, r => r.SchemaVersion) : new Record(CurrentSchema, [], []);
    }

    public event Action<TrustedClient>? Revoked;

    public IReadOnlyList<TrustedClient> Clients
    {
        get { lock (_gate) return _record.Clients; }
    }

    public bool IsTrusted(string fingerprint)
    {
        lock (_gate) return _record.Clients.Any(c => c.Fingerprint == fingerprint);
    }

    /// <summary>Makes a token for clientName, valid for lifetime; the returned token holds the only copy of its secret.</summary>
    public TrustToken IssueToken(string clientName, string serverFingerprint, IReadOnlyList<string> addresses, TimeSpan lifetime)
    {
        CheckName(clientName);
        if (lifetime <= TimeSpan.Zero) throw EngineException.Invalid("InvalidArgument", $"a trust token's lifetime must be positive, not {lifetime}");
        var token = new TrustToken(clientName, serverFingerprint, addresses, TrustToken.NewSecret(), _now() + lifetime);
        lock (_gate)
        {
            var pending = Live(_record.Tokens);
            if (_record.Clients.Any(c => c.Name == clientName) || pending.Any(t => t.ClientName == clientName))
                throw EngineException.Conflict("TrustNameExists", $"a client named '{clientName}' is already trusted or invited");
            Save(_record with { Tokens = [.. pending, new PendingToken(TrustToken.HashOf(token.Secret), clientName, token.ExpiresAt)] });
        }
        return token;
    }

    /// <summary>Trusts client for the token whose secret this is, and uses the token up.</summary>
    public TrustedClient Redeem(string secret, X509Certificate2 client)
    {
        string hash = TrustToken.HashOf(secret);
        lock (_gate)
        {
            var pending = _record.Tokens.FirstOrDefault(t => t.SecretHash == hash);
            if (pending is null)
                throw new EngineException(FailureKind.Forbidden, "TokenInvalid", "the trust token is unknown or already used");
            if (pending.ExpiresAt <= _now())
            {
                Save(_record with { Tokens = Live(_record.Tokens) });
                throw new EngineException(FailureKind.Forbidden, "TokenExpired", $"the trust token for '{pending.ClientName}' expired at {pending.ExpiresAt:u}");
            }
            string fingerprint = CertificateFingerprint.Of(client);
            if (_record.Clients.Any(c => c.Fingerprint == fingerprint))
                throw EngineException.Conflict("TrustExists", $"certificate {fingerprint} is already trusted");
            var trusted = new TrustedClient(fingerprint, pending.ClientName, Convert.ToBase64String(client.RawData), _now());
            Save(new Record(CurrentSchema, [.. _record.Clients, trusted], [.. Live(_record.Tokens).Where(t => t != pending)]));
            return trusted;
        }
    }

    /// <summary>Stops trusting the client with this fingerprint or name.</summary>
    public TrustedClient Remove(string fingerprintOrName)
    {
        TrustedClient removed;
        lock (_gate)
        {
            removed = _record.Clients.FirstOrDefault(c => c.Fingerprint == fingerprintOrName.ToLowerInvariant())
                ?? _record.Clients.FirstOrDefault(c => c.Name == fingerprintOrName)
                ?? throw EngineException.NotFound("TrustNotFound", $"no trusted client has fingerprint or name '{fingerprintOrName}'");
            Save(_record with { Clients = [.. _record.Clients.Where(c => c != removed)] });
        }
        Revoked?.Invoke(removed);
        return removed;
    }

    private List<PendingToken> Live(IEnumerable<PendingToken> tokens) => [.. tokens.Where(t => t.ExpiresAt > _now())];

    private void Save(Record record)
    {
        Sys.WriteFileAtomic(_path, JsonSerializer.SerializeToUtf8Bytes(record, StateStore.Json));
        _record = record;
    }

    private static void CheckName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > MaxNameLength || name.Any(char.IsControl))
            throw EngineException.Invalid("InvalidName", $"a client name must be 1 to {MaxNameLength} printable characters, not '{name}'");
    }

    private sealed record PendingToken(string SecretHash, string ClientName, DateTimeOffset ExpiresAt);

    private sealed record Record(int SchemaVersion, List<TrustedClient> Clients, List<PendingToken> Tokens);
}
