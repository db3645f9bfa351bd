using System.Text.Json;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Remote;

/// <summary>
/// The daemon's own settings that outlive it (state/server.json): today core.https_address, the
/// address its HTTPS listener binds ("" or absent: no listener).
/// </summary>
public sealed class ServerConfig
{
    public const string HttpsAddressKey = "core.https_address";
    private const int CurrentSchema = 1;
    private readonly string _path;
    private readonly object _gate = new();

    public ServerConfig(string stateDir)
    {
        _path = Path.Combine(stateDir, "server.json");
        HttpsAddress = File.Exists(_path)
            ? StateStore.Read<Record>(_path, CurrentSchema, r => r.SchemaVersion).HttpsAddress ?? ""
            : "";
    }

    public string HttpsAddress { get; private set; }

    /// <summary>Every setting by its LXD-style key.</summary>
    public IReadOnlyDictionary<string, string> Values => new Dictionary<string, string> { [HttpsAddressKey] = HttpsAddress };

    /// <summary>Validates and keeps a new HTTPS address ("" turns the listener off).</summary>
    public void SetHttpsAddress(string address)
    {
        if (address.Length > 0) HttpsEndpoint.Parse(address);
        lock (_gate)
        {
            Sys.WriteFileAtomic(_path, JsonSerializer.SerializeToUtf8Bytes(new Record(CurrentSchema, address), StateStore.Json));
            HttpsAddress = address;
        }
    }

    private sealed record Record(int SchemaVersion, string? HttpsAddress);
}
