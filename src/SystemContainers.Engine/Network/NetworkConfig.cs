using System.Collections.Immutable;
using System.Text.RegularExpressions;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Network;

/// <summary>
/// A managed bridge network's config keys (LXD's names), parsed and validated once:
/// ipv4.address (required), ipv4.nat, ipv6.address, ipv6.nat, dns.domain.
/// </summary>
public sealed partial record NetworkConfig
{
    public const string IPv4Address = "ipv4.address";
    public const string IPv4Nat = "ipv4.nat";
    public const string IPv6Address = "ipv6.address";
    public const string IPv6Nat = "ipv6.nat";
    public const string DnsDomain = "dns.domain";
    public const string DefaultDomain = "sc";

    public static readonly IReadOnlyList<string> Keys = [IPv4Address, IPv4Nat, IPv6Address, IPv6Nat, DnsDomain];

    private NetworkConfig(ImmutableSortedDictionary<string, string> raw, IpSubnet v4, IpSubnet? v6, bool nat4, bool nat6, string domain)
    {
        Raw = raw;
        IPv4 = v4;
        IPv6 = v6;
        Nat4 = nat4;
        Nat6 = nat6;
        Domain = domain;
    }

    public ImmutableSortedDictionary<string, string> Raw { get; }
    public IpSubnet IPv4 { get; }
    public IpSubnet? IPv6 { get; }
    public bool Nat4 { get; }
    public bool Nat6 { get; }
    public string Domain { get; }

    /// <summary>Validates a network name: it is the bridge's interface name, so at most 15 characters.</summary>
    public static void ValidateName(string? name)
    {
        if (string.IsNullOrEmpty(name) || !NamePattern().IsMatch(name) || name is "lo" or "all" or "default" or "none" || name.Length > 15)
            throw EngineException.Invalid("InvalidNetworkName",
                $"network name '{DisplayText.Escape(name)}' is invalid: 1 to 15 characters of a-z, 0-9, '-' and '_', starting with a letter (it names the bridge interface), and not lo, all, default or none");
    }

    public static NetworkConfig Parse(IReadOnlyDictionary<string, string>? values)
    {
        var raw = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in values ?? new Dictionary<string, string>())
        {
            if (!Keys.Contains(key))
                throw EngineException.Invalid("UnknownConfigKey", $"unknown network config key '{key}'; known keys: {string.Join(", ", Keys)}");
            if (value is null || value.Contains('\n') || value.Contains('\0') || value.Contains(','))
                throw EngineException.Invalid("InvalidConfigValue", $"network config key '{key}' has an invalid value");
            raw[key] = value;
        }
        if (!raw.TryGetValue(IPv4Address, out var v4Text))
            throw EngineException.Invalid("MissingIPv4", $"a network needs {IPv4Address}, like 10.0.3.1/24");
        var v4 = IpSubnet.Parse(v4Text, v6: false, IPv4Address);
        var v6 = raw.TryGetValue(IPv6Address, out var v6Text) && v6Text is not ("" or "none") ? IpSubnet.Parse(v6Text, v6: true, IPv6Address) : null;
        string domain = raw.TryGetValue(DnsDomain, out var d) ? d : DefaultDomain;
        if (!DomainPattern().IsMatch(domain) || domain.Length > 200)
            throw EngineException.Invalid("InvalidConfigValue", $"network config key '{DnsDomain}' must be a DNS domain like 'sc' or 'lab.example', not '{domain}'");
        bool nat4 = raw.TryGetValue(IPv4Nat, out var n4) && ContainerConfig.ParseBool(IPv4Nat, n4);
        bool nat6 = raw.TryGetValue(IPv6Nat, out var n6) && ContainerConfig.ParseBool(IPv6Nat, n6);
        if (nat6 && v6 is null) throw EngineException.Invalid("InvalidConfigValue", $"{IPv6Nat} needs {IPv6Address}");
        return new NetworkConfig(raw.ToImmutable(), v4, v6, nat4, nat6, domain);
    }

    [GeneratedRegex("^[a-z][a-z0-9_-]*\\z")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\\z")]
    private static partial Regex DomainPattern();
}

/// <summary>
/// A managed network as stored in networks/&lt;name&gt;/network.json. Pending is the intent written
/// before a network's bridge is made and before its removal starts: a daemon that finds it at
/// start removes whatever of that network exists.
/// </summary>
public sealed record NetworkRecord(string Name, IReadOnlyDictionary<string, string> Config, DateTimeOffset Created,
    bool Pending = false, int SchemaVersion = NetworkRecord.CurrentSchema)
{
    public const int CurrentSchema = 1;
}
