using System.Globalization;
using System.Net;

namespace SystemContainers.Engine.Spec;

/// <summary>One side of a proxy device: tcp:ADDRESS:PORT or udp:ADDRESS:PORT (IPv6 in brackets: tcp:[::1]:80).</summary>
public sealed record ProxyEndpoint(string Protocol, IPAddress Address, int Port)
{
    public IPEndPoint EndPoint => new(Address, Port);

    public override string ToString() =>
        $"{Protocol}:{(Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Address}]" : Address.ToString())}:{Port}";

    public static ProxyEndpoint Parse(string key, string value)
    {
        int colon = value.IndexOf(':');
        int last = value.LastIndexOf(':');
        string protocol = colon < 0 ? "" : value[..colon];
        string host = colon < 0 || last == colon ? "" : value[(colon + 1)..last];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        else if (host.Contains(':')) host = "";
        // TryParse takes inet_aton's short forms (1.2.3 is 1.2.0.3); only the dotted quad is meant.
        if (protocol is not ("tcp" or "udp") || !IPAddress.TryParse(host, out var address) || host.Contains('%')
            || (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && address.ToString() != host)
            || !int.TryParse(value[(last + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            throw EngineException.Invalid("InvalidConfigValue",
                $"config key '{key}' must be tcp:ADDRESS:PORT or udp:ADDRESS:PORT (like tcp:0.0.0.0:8080, udp:[::1]:53, port 1 to 65535), not '{value}'");
        return new ProxyEndpoint(protocol, address, port);
    }
}

/// <summary>
/// A proxy device from proxy.&lt;device&gt;.listen and .connect: the daemon listens on the host
/// (its network namespace) and carries each connection to the connect address inside the
/// container's network namespace, as LXD's proxy device does; UDP datagrams go the same way,
/// and the replies back to the client that sent them.
/// </summary>
public sealed record ProxySpec(string Device, ProxyEndpoint Listen, ProxyEndpoint Connect)
{
    public const string Prefix = "proxy.";
    public static readonly IReadOnlyList<string> Properties = ["listen", "connect"];

    public static string Key(string device, string property) => $"{Prefix}{device}.{property}";

    public static bool IsProxyKey(string key) => key.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Validates every proxy.* key of a config and returns the devices, ordered by name.</summary>
    public static IReadOnlyList<ProxySpec> ParseAll(IReadOnlyDictionary<string, string> config)
    {
        var devices = DeviceKeys.Group(config, Prefix, Properties, "a proxy device");
        return [.. devices.Select(d => FromProperties(d.Key, d.Value))];
    }

    private static ProxySpec FromProperties(string device, Dictionary<string, string> p)
    {
        foreach (var property in Properties)
            if (!p.ContainsKey(property))
                throw EngineException.Invalid("InvalidConfigValue", $"proxy device '{device}' needs {Key(device, property)} as well");
        var listen = ProxyEndpoint.Parse(Key(device, "listen"), p["listen"]);
        var connect = ProxyEndpoint.Parse(Key(device, "connect"), p["connect"]);
        // A datagram has no stream to turn into a connection, nor the other way round.
        if (listen.Protocol != connect.Protocol)
            throw EngineException.Invalid("InvalidConfigValue",
                $"proxy device '{device}' listens on {listen.Protocol} but connects with {connect.Protocol}; both must be tcp or both udp");
        return new ProxySpec(device, listen, connect);
    }
}
