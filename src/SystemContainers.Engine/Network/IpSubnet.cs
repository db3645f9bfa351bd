using System.Net;
using System.Net.Sockets;
using System.Numerics;

namespace SystemContainers.Engine.Network;

/// <summary>
/// A bridge's address in CIDR form ("10.0.3.1/24"): the host address the bridge and dnsmasq
/// use, inside the subnet its containers share.
/// </summary>
public sealed record IpSubnet(IPAddress Address, int PrefixLength)
{
    public bool IsV6 => Address.AddressFamily == AddressFamily.InterNetworkV6;

    private int Bits => IsV6 ? 128 : 32;

    /// <summary>Parses and checks "address/prefix" for one family; what: the config key, for the error.</summary>
    public static IpSubnet Parse(string text, bool v6, string what)
    {
        string family = v6 ? "IPv6" : "IPv4";
        int slash = text.IndexOf('/');
        if (slash < 0 || !TryParseAddress(text[..slash], v6, out var address)
            || !int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None, null, out int prefix))
            throw EngineException.Invalid("InvalidCidr", $"{what} '{text}' is not an {family} address in CIDR form, like {(v6 ? "fd42:1:2:3::1/64" : "10.0.3.1/24")}");
        var subnet = new IpSubnet(address, prefix);
        if (v6)
        {
            // Containers configure themselves by SLAAC from the router advertisements, which needs a /64.
            if (prefix != 64) throw EngineException.Invalid("InvalidCidr", $"{what} '{text}' must be a /64 (addresses are assigned by SLAAC)");
        }
        else
        {
            if (prefix < 8 || prefix > 30) throw EngineException.Invalid("InvalidCidr", $"{what} '{text}' must have a prefix from /8 to /30");
            var host = subnet.ToInteger(address);
            if (host == subnet.NetworkInteger || host == subnet.BroadcastInteger)
                throw EngineException.Invalid("InvalidCidr", $"{what} '{text}' is the network or broadcast address; use a host address such as {subnet.FromInteger(subnet.NetworkInteger + 1)}/{prefix}");
        }
        if (IPAddress.IsLoopback(address) || address.IsIPv6LinkLocal || address.IsIPv6Multicast || (!v6 && address.GetAddressBytes()[0] >= 224))
            throw EngineException.Invalid("InvalidCidr", $"{what} '{text}' is not a unicast address usable on a bridge");
        return subnet;
    }

    /// <summary>
    /// An address of one family in its plain written form only: IPAddress.TryParse also takes
    /// "10.1" (10.0.0.1), hex and octal parts, and IPv6 scope ids, which name other addresses than they seem to.
    /// </summary>
    public static bool TryParseAddress(string text, bool v6, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IPAddress? address)
    {
        if (!IPAddress.TryParse(text, out address) || (address.AddressFamily == AddressFamily.InterNetworkV6) != v6
            || (v6 ? text.Contains('%') || address.ScopeId != 0 : address.ToString() != text))
        {
            address = null;
            return false;
        }
        return true;
    }

    public IPAddress Network => FromInteger(NetworkInteger);

    public override string ToString() => $"{Address}/{PrefixLength}";

    /// <summary>The subnet itself, as a route or a firewall rule names it ("10.0.3.0/24").</summary>
    public string NetworkCidr => $"{Network}/{PrefixLength}";

    public bool Contains(IPAddress address) =>
        address.AddressFamily == Address.AddressFamily && (ToInteger(address) & Mask) == NetworkInteger;

    public bool Overlaps(IpSubnet other)
    {
        if (other.IsV6 != IsV6) return false;
        var shorter = other.PrefixLength < PrefixLength ? other : this;
        return shorter.Contains(shorter == this ? other.Network : Network);
    }

    /// <summary>The subnet's mask in dotted form, as DHCP's subnet mask option carries it.</summary>
    public IPAddress Netmask => FromInteger(Mask);

    /// <summary>The subnet's broadcast address (DHCP option 28).</summary>
    public IPAddress BroadcastAddress => FromInteger(BroadcastInteger);

    /// <summary>
    /// The address SLAAC gives a NIC of this MAC in this /64 with a modified EUI-64 interface
    /// identifier (RFC 4291), as the kernel and systemd-networkd make it by default.
    /// </summary>
    public IPAddress Eui64(string mac)
    {
        var m = Convert.FromHexString(mac.Replace(":", ""));
        var bytes = Network.GetAddressBytes();
        byte[] id = [(byte)(m[0] ^ 0x02), m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]];
        id.CopyTo(bytes, 8);
        return new IPAddress(bytes);
    }

    /// <summary>How many addresses the subnet leaves to containers: every host address but the bridge's own.</summary>
    public BigInteger ContainerAddresses => BroadcastInteger - NetworkInteger - 2;

    /// <summary>
    /// The first container address after the given one (from the start when null), wrapping
    /// round, that taken does not claim; null when every one is taken. Going on from the last
    /// one handed out keeps a freed address out of use as long as others are free, so a
    /// neighbour's ARP cache never points a new container's address at the old one's MAC.
    /// </summary>
    public IPAddress? NextFree(IPAddress? after, Func<IPAddress, bool> taken)
    {
        BigInteger first = NetworkInteger + 1, last = BroadcastInteger - 1, own = ToInteger(Address);
        BigInteger start = after is not null && Contains(after) ? ToInteger(after) + 1 : first;
        for (BigInteger n = 0, span = last - first + 1; n < span; n++)
        {
            var candidate = first + (start - first + n) % span;
            if (candidate == own) continue;
            var address = FromInteger(candidate);
            if (!taken(address)) return address;
        }
        return null;
    }

    /// <summary>A usable host address of this subnet that is not the bridge's own.</summary>
    public bool IsLeasable(IPAddress address) =>
        Contains(address) && !address.Equals(Address) && ToInteger(address) != NetworkInteger && (IsV6 || ToInteger(address) != BroadcastInteger);

    private BigInteger Mask => ((BigInteger.One << PrefixLength) - 1) << (Bits - PrefixLength);

    private BigInteger NetworkInteger => ToInteger(Address) & Mask;

    private BigInteger BroadcastInteger => NetworkInteger | (((BigInteger.One << Bits) - 1) ^ Mask);

    private BigInteger ToInteger(IPAddress address) => new(address.GetAddressBytes(), isUnsigned: true, isBigEndian: true);

    private IPAddress FromInteger(BigInteger value)
    {
        var bytes = new byte[Bits / 8];
        value.TryWriteBytes(bytes.AsSpan(bytes.Length - value.GetByteCount(isUnsigned: true)), out _, isUnsigned: true, isBigEndian: true);
        return new IPAddress(bytes);
    }
}
