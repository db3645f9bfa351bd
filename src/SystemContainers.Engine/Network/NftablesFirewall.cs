using System.Text;

namespace SystemContainers.Engine.Network;

/// <summary>
/// The daemon's own nftables table (family inet): masquerading for networks with NAT, and
/// accept rules for DHCP, DNS and forwarding on its bridges. The whole table is replaced in
/// one `nft -f` transaction, so it is never seen half-written; no other table is touched.
/// </summary>
public sealed class NftablesFirewall(string nftPath, string table)
{
    public string Table { get; } = table;

    /// <summary>The ruleset for these networks; with none the transaction just removes the table.</summary>
    public string Ruleset(IEnumerable<(string Bridge, NetworkConfig Config)> networks)
    {
        var list = networks.OrderBy(n => n.Bridge, StringComparer.Ordinal).ToList();
        var s = new StringBuilder();
        // Creating the table first makes the delete succeed whether or not it existed.
        s.Append($"table inet {Table}\ndelete table inet {Table}\n");
        if (list.Count == 0) return s.ToString();
        s.Append($"table inet {Table} {{\n");
        s.Append("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        foreach (var (bridge, c) in list)
        {
            if (c.Nat4)
                s.Append($"    ip saddr {c.IPv4.NetworkCidr} ip daddr != {c.IPv4.NetworkCidr} masquerade comment \"{bridge}\"\n");
            if (c.Nat6 && c.IPv6 is { } v6)
                s.Append($"    ip6 saddr {v6.NetworkCidr} ip6 daddr != {v6.NetworkCidr} masquerade comment \"{bridge}\"\n");
        }
        s.Append("  }\n");
        s.Append("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
        foreach (var (bridge, _) in list)
            s.Append($"    iifname \"{bridge}\" accept\n    oifname \"{bridge}\" accept\n");
        s.Append("  }\n");
        s.Append("  chain input {\n    type filter hook input priority filter; policy accept;\n");
        foreach (var (bridge, _) in list)
            s.Append($"    iifname \"{bridge}\" udp dport {{ 53, 67, 547 }} accept\n    iifname \"{bridge}\" tcp dport 53 accept\n");
        s.Append("  }\n}\n");
        return s.ToString();
    }

    public void Apply(IEnumerable<(string Bridge, NetworkConfig Config)> networks)
    {
        string rules = Ruleset(networks);
        int rc;
        string error;
        try
        {
            (rc, error) = Interop.Sys.Run(nftPath, ["nft", "-f", "-"], rules);
        }
        catch (Interop.NativeException e)
        {
            throw new EngineException(FailureKind.Failed, "FirewallFailed", $"cannot load nftables table inet {Table}: {e.Message}; is nftables installed?", e);
        }
        if (rc != 0)
            throw new EngineException(FailureKind.Failed, "FirewallFailed", $"cannot load nftables table inet {Table}: nft exited with {rc}: {error}");
    }
}
