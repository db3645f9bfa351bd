using System.Net;
using System.Net.NetworkInformation;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Spec;

public enum NicType { Bridged, None }

/// <summary>
/// A network device from a container's nic.&lt;device&gt;.* config keys: its type (bridged or
/// none), the managed network it joins, its names inside and on the host, its MAC address and
/// an optional fixed IPv4 address (a static DHCP lease).
/// </summary>
public sealed partial record NicSpec(string Device, NicType Type, string? Network, string Name, string? HostName, PhysicalAddress? HwAddr, IPAddress? IPv4)
{
    public const string Prefix = "nic.";
    public static readonly IReadOnlyList<string> Properties = ["type", "network", "name", "host_name", "hwaddr", "ipv4.address"];

    public static string Key(string device, string property) => $"{Prefix}{device}.{property}";

    public static bool IsNicKey(string key) => key.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Validates every nic.* key of a config and returns the devices, ordered by name.</summary>
    public static IReadOnlyList<NicSpec> ParseAll(IReadOnlyDictionary<string, string> config)
    {
        var devices = DeviceKeys.Group(config, Prefix, Properties, "a NIC");
        var nics = devices.Select(d => FromProperties(d.Key, d.Value)).ToList();
        foreach (var group in nics.Where(n => n.Type == NicType.Bridged).GroupBy(n => n.Name).Where(g => g.Count() > 1))
            throw EngineException.Invalid("InvalidConfigValue", $"NICs {string.Join(" and ", group.Select(n => n.Device))} both use the interface name '{group.Key}'");
        return nics;
    }

    private static NicSpec FromProperties(string device, Dictionary<string, string> p)
    {
        string typeText = p.GetValueOrDefault("type", "bridged");
        var type = typeText switch
        {
            "bridged" => NicType.Bridged,
            "none" => NicType.None,
            _ => throw EngineException.Invalid("InvalidConfigValue", $"config key '{Key(device, "type")}' must be 'bridged' or 'none', not '{typeText}'"),
        };
        string name = p.GetValueOrDefault("name", device);
        CheckInterfaceName(Key(device, "name"), name);
        if (name == "lo") throw EngineException.Invalid("InvalidConfigValue", $"config key '{Key(device, "name")}' must not be lo, the container's loopback");
        string? hostName = p.GetValueOrDefault("host_name");
        if (hostName is not null) CheckInterfaceName(Key(device, "host_name"), hostName);
        string? network = p.GetValueOrDefault("network");
        if (network is not null) SystemContainers.Engine.Network.NetworkConfig.ValidateName(network);
        PhysicalAddress? mac = null;
        if (p.TryGetValue("hwaddr", out var macText))
        {
            if (!MacPattern().IsMatch(macText) || (Convert.ToByte(macText[..2], 16) & 1) != 0 || macText.Replace(":", "").All(c => c == '0'))
                throw EngineException.Invalid("InvalidConfigValue", $"config key '{Key(device, "hwaddr")}' must be a unicast MAC address like 0a:5c:12:34:56:78, not '{macText}'");
            mac = PhysicalAddress.Parse(macText.Replace(':', '-').ToUpperInvariant());
        }
        IPAddress? v4 = null;
        if (p.TryGetValue("ipv4.address", out var v4Text)
            && !SystemContainers.Engine.Network.IpSubnet.TryParseAddress(v4Text, v6: false, out v4))
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{Key(device, "ipv4.address")}' must be an IPv4 address like 10.0.3.50, not '{v4Text}'");
        return new NicSpec(device, type, network, name, hostName, mac, v4);
    }

    private static void CheckInterfaceName(string key, string value)
    {
        if (value.Length is 0 or > 15 || value is "." or ".." || value.Any(c => c <= ' ' || c is '/' or ':' || c > '~'))
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' must be an interface name of 1 to 15 characters without '/', ':' or spaces, not '{value}'");
    }

    /// <summary>The host end's name when none is set: stable for a container's device, unique on the host.</summary>
    public string HostNameFor(string container) =>
        HostName ?? "vsc" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{container}/{Device}")))[..10];

    /// <summary>A random locally administered unicast MAC address (first byte 0a: local bit set, group bit clear).</summary>
    public static string NewMac()
    {
        Span<byte> b = stackalloc byte[5];
        RandomNumberGenerator.Fill(b);
        return $"0a:{b[0]:x2}:{b[1]:x2}:{b[2]:x2}:{b[3]:x2}:{b[4]:x2}";
    }

    public string? HwAddrText => HwAddr is null ? null : string.Join(':', HwAddr.GetAddressBytes().Select(x => x.ToString("x2")));

    [GeneratedRegex("^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}\\z")]
    private static partial Regex MacPattern();
}
