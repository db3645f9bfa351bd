using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace SystemContainers.Engine.Remote;

/// <summary>An HTTPS listen address as users write it: host:port, [v6]:port, or a bare IP address (port 8443, LXD's).</summary>
public static class HttpsEndpoint
{
    public const int DefaultPort = 8443;

    public static IPEndPoint Parse(string address)
    {
        if (!IPEndPoint.TryParse(address, out var endpoint))
            throw EngineException.Invalid("InvalidAddress", $"'{address}' is not an address to listen on (an IP address with an optional :port)");
        // TryParse gives port 0 to a bare address; a listener on a random port could never be reached.
        return endpoint.Port == 0 ? new IPEndPoint(endpoint.Address, DefaultPort) : endpoint;
    }

    /// <summary>
    /// Where clients reach a listener, for trust tokens: its own address, or for a wildcard every
    /// address of the host's interfaces that are up, loopback last.
    /// </summary>
    public static IReadOnlyList<string> Advertised(IPEndPoint listening)
    {
        if (!listening.Address.Equals(IPAddress.Any) && !listening.Address.Equals(IPAddress.IPv6Any)) return [listening.ToString()];
        var family = listening.Address.AddressFamily;
        return [.. NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus != OperationalStatus.Down)
            .OrderBy(n => n.NetworkInterfaceType == NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses.Select(u => u.Address))
            .Where(a => a.AddressFamily == family || (family == AddressFamily.InterNetworkV6 && a.AddressFamily == AddressFamily.InterNetwork))
            .Where(a => !a.IsIPv6LinkLocal)
            .Select(a => new IPEndPoint(a, listening.Port).ToString())];
    }
}
