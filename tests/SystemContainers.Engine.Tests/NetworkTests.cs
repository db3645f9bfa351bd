using System.Diagnostics;
using System.Net;
using System.Net.NetworkInformation;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Tests;

public class IpSubnetTests
{
    [Theory]
    [InlineData("10.0.3.1/24", "10.0.3.0/24")]
    [InlineData("192.168.7.129/25", "192.168.7.128/25")]
    [InlineData("172.16.0.5/30", "172.16.0.4/30")]
    public void ParsesHostAddressesAndTheirSubnet(string text, string network)
    {
        var s = IpSubnet.Parse(text, v6: false, "ipv4.address");
        Assert.Equal(text, s.ToString());
        Assert.Equal(network, s.NetworkCidr);
    }

    [Theory]
    [InlineData("10.0.3.1")]
    [InlineData("10.0.3.1/")]
    [InlineData("10.0.3.1/33")]
    [InlineData("10.0.3.1/31")]
    [InlineData("10.0.3.0/24")]
    [InlineData("10.0.3.255/24")]
    [InlineData("127.0.0.1/8")]
    [InlineData("224.0.0.1/24")]
    [InlineData("fd00::1/64")]
    [InlineData("10.0.3.1/+24")]
    [InlineData("not-an-address/24")]
    [InlineData("10.3/24")]
    [InlineData("0x0a.0.3.1/24")]
    [InlineData("010.0.3.1/24")]
    [InlineData("10.0.3.1/24\n")]
    [InlineData("10.0.3.1/99999999999")]
    public void RefusesWhatCannotAddressABridge(string text)
    {
        var e = Assert.Throws<EngineException>(() => IpSubnet.Parse(text, v6: false, "ipv4.address"));
        Assert.Equal("InvalidCidr", e.Reason);
        Assert.Contains(text, e.Message);
    }

    [Fact]
    public void WantsA64ForIPv6()
    {
        Assert.Equal("fd42:1:2:3::/64", IpSubnet.Parse("fd42:1:2:3::1/64", v6: true, "ipv6.address").NetworkCidr);
        Assert.Equal("InvalidCidr", Assert.Throws<EngineException>(() => IpSubnet.Parse("fd42::1/48", v6: true, "ipv6.address")).Reason);
        Assert.Equal("InvalidCidr", Assert.Throws<EngineException>(() => IpSubnet.Parse("fe80::1/64", v6: true, "ipv6.address")).Reason);
    }

    [Theory]
    [InlineData("10.0.3.1/24", "10.0.3.200/25", true)]
    [InlineData("10.0.3.1/24", "10.0.0.1/16", true)]
    [InlineData("10.0.3.1/24", "10.0.4.1/24", false)]
    [InlineData("10.0.2.1/23", "10.0.3.1/24", true)]
    public void FindsOverlapsBothWays(string a, string b, bool overlap)
    {
        var x = IpSubnet.Parse(a, false, "a");
        var y = IpSubnet.Parse(b, false, "b");
        Assert.Equal(overlap, x.Overlaps(y));
        Assert.Equal(overlap, y.Overlaps(x));
    }

    [Fact]
    public void LeasesEveryHostAddressButTheBridges()
    {
        var s = IpSubnet.Parse("10.0.3.1/24", false, "x");
        Assert.Equal(253, (int)s.ContainerAddresses);
        Assert.Equal("255.255.255.0", s.Netmask.ToString());
        Assert.Equal(4093, (int)IpSubnet.Parse("10.0.16.1/20", false, "x").ContainerAddresses);
        Assert.True(s.IsLeasable(IPAddress.Parse("10.0.3.50")));
        Assert.False(s.IsLeasable(IPAddress.Parse("10.0.3.1")));
        Assert.False(s.IsLeasable(IPAddress.Parse("10.0.3.0")));
        Assert.False(s.IsLeasable(IPAddress.Parse("10.0.3.255")));
        Assert.False(s.IsLeasable(IPAddress.Parse("10.0.4.5")));
    }

    [Fact]
    public void HandsOutTheNextFreeAddressAfterTheLastOneWrappingRoundAndNeverTheBridges()
    {
        var s = IpSubnet.Parse("10.0.3.2/29", false, "x");
        var taken = new HashSet<string>();
        string? Next(string? after) => s.NextFree(after is null ? null : IPAddress.Parse(after), a => taken.Contains(a.ToString()))?.ToString();
        Assert.Equal("10.0.3.1", Next(null));
        Assert.Equal("10.0.3.3", Next("10.0.3.1"));
        Assert.Equal("10.0.3.1", Next("10.0.3.6"));
        taken.UnionWith(["10.0.3.1", "10.0.3.3", "10.0.3.4"]);
        Assert.Equal("10.0.3.5", Next("10.0.3.1"));
        taken.UnionWith(["10.0.3.5", "10.0.3.6"]);
        Assert.Null(Next("10.0.3.4"));
    }
}

public class NetworkConfigTests
{
    [Fact]
    public void ParsesKeysWithDefaults()
    {
        var c = NetworkConfig.Parse(new Dictionary<string, string> { ["ipv4.address"] = "10.9.0.1/24", ["ipv4.nat"] = "true" });
        Assert.True(c.Nat4);
        Assert.False(c.Nat6);
        Assert.Null(c.IPv6);
        Assert.Equal("sc", c.Domain);
    }

    [Theory]
    [InlineData("ipv4.dhcp", "false", "UnknownConfigKey")]
    [InlineData("ipv4.nat", "maybe", "InvalidConfigValue")]
    [InlineData("ipv6.nat", "true", "InvalidConfigValue")]
    [InlineData("dns.domain", "Bad_Domain", "InvalidConfigValue")]
    [InlineData("dns.domain", "a,b", "InvalidConfigValue")]
    public void RefusesBadKeysAndValues(string key, string value, string reason)
    {
        var e = Assert.Throws<EngineException>(() =>
            NetworkConfig.Parse(new Dictionary<string, string> { ["ipv4.address"] = "10.9.0.1/24", [key] = value }));
        Assert.Equal(reason, e.Reason);
    }

    [Fact]
    public void NeedsAnIPv4Address() =>
        Assert.Equal("MissingIPv4", Assert.Throws<EngineException>(() => NetworkConfig.Parse(new Dictionary<string, string>())).Reason);

    [Theory]
    [InlineData("scbr0", true)]
    [InlineData("lab-net_1", true)]
    [InlineData("sixteen-chars-xx", false)]
    [InlineData("0net", false)]
    [InlineData("Net", false)]
    [InlineData("lo", false)]
    [InlineData("none", false)]
    [InlineData("a/b", false)]
    [InlineData("scbr0\n", false)]
    public void NamesAreInterfaceNames(string name, bool valid)
    {
        if (valid) NetworkConfig.ValidateName(name);
        else Assert.Equal("InvalidNetworkName", Assert.Throws<EngineException>(() => NetworkConfig.ValidateName(name)).Reason);
    }
}

public class NicSpecTests
{
    [Fact]
    public void ReadsDevicesFromConfigKeys()
    {
        var nics = NicSpec.ParseAll(new Dictionary<string, string>
        {
            ["nic.eth0.network"] = "lan", ["nic.eth0.hwaddr"] = "0a:11:22:33:44:55", ["nic.eth0.ipv4.address"] = "10.0.3.9",
            ["nic.mgmt.type"] = "none", ["limits.memory"] = "1GiB",
        });
        Assert.Equal(2, nics.Count);
        var eth0 = nics[0];
        Assert.Equal(("eth0", NicType.Bridged, "lan", "eth0"), (eth0.Device, eth0.Type, eth0.Network, eth0.Name));
        Assert.Equal("0a:11:22:33:44:55", eth0.HwAddrText);
        Assert.Equal(IPAddress.Parse("10.0.3.9"), eth0.IPv4);
        Assert.Equal(NicType.None, nics[1].Type);
    }

    [Theory]
    [InlineData("nic.eth0.type", "macvlan", "InvalidConfigValue")]
    [InlineData("nic.eth0.mtu", "9000", "UnknownConfigKey")]
    [InlineData("nic.eth0", "x", "UnknownConfigKey")]
    [InlineData("nic.Eth0.type", "bridged", "InvalidConfigKey")]
    [InlineData("nic.eth0.hwaddr", "01:00:5e:00:00:01", "InvalidConfigValue")]
    [InlineData("nic.eth0.hwaddr", "00:00:00:00:00:00", "InvalidConfigValue")]
    [InlineData("nic.eth0.hwaddr", "0a:11:22:33:44", "InvalidConfigValue")]
    [InlineData("nic.eth0.name", "much-too-long-ifname", "InvalidConfigValue")]
    [InlineData("nic.eth0.name", "a/b", "InvalidConfigValue")]
    [InlineData("nic.lo.type", "bridged", "InvalidConfigValue")]
    [InlineData("nic.eth0.host_name", "with space", "InvalidConfigValue")]
    [InlineData("nic.eth0.ipv4.address", "10.0.3.9/24", "InvalidConfigValue")]
    [InlineData("nic.eth0.ipv4.address", "fd00::5", "InvalidConfigValue")]
    [InlineData("nic.eth0.ipv4.address", "10.3", "InvalidConfigValue")]
    [InlineData("nic.eth0.ipv4.address", "0x0a.0.3.9", "InvalidConfigValue")]
    [InlineData("nic.eth0\n.network", "lan", "InvalidConfigKey")]
    [InlineData("nic.eth0.hwaddr", "0a:11:22:33:44:55\n", "InvalidConfigValue")]
    [InlineData("nic.eth0.network", "Bad!", "InvalidNetworkName")]
    public void RefusesBadKeys(string key, string value, string reason)
    {
        var e = Assert.Throws<EngineException>(() => ContainerConfig.Parse(new Dictionary<string, string> { [key] = value }));
        Assert.Equal(reason, e.Reason);
    }

    [Fact]
    public void RefusesTwoDevicesWithOneInterfaceName()
    {
        var e = Assert.Throws<EngineException>(() => NicSpec.ParseAll(new Dictionary<string, string>
        {
            ["nic.eth0.network"] = "a", ["nic.eth1.network"] = "b", ["nic.eth1.name"] = "eth0",
        }));
        Assert.Contains("eth0 and eth1", e.Message);
    }

    [Fact]
    public void HostNamesAreStablePerContainerAndDeviceAndFitAnInterfaceName()
    {
        var nic = NicSpec.ParseAll(new Dictionary<string, string> { ["nic.eth0.network"] = "lan" })[0];
        string a = nic.HostNameFor("web");
        Assert.Equal(a, nic.HostNameFor("web"));
        Assert.NotEqual(a, nic.HostNameFor("web2"));
        Assert.Matches("^vsc[0-9a-f]{10}$", a);
        Assert.Equal("myveth", (nic with { HostName = "myveth" }).HostNameFor("web"));
    }

    [Fact]
    public void NewMacsAreLocallyAdministeredUnicastAndDiffer()
    {
        var macs = Enumerable.Range(0, 50).Select(_ => NicSpec.NewMac()).ToList();
        Assert.Equal(50, macs.Distinct().Count());
        foreach (var mac in macs)
        {
            byte first = Convert.ToByte(mac[..2], 16);
            Assert.Equal(2, first & 3);
            NicSpec.ParseAll(new Dictionary<string, string> { ["nic.eth0.hwaddr"] = mac });
        }
    }
}

public sealed class FirewallAndDnsmasqTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly EventLoop _loop = new();
    private readonly Dnsmasq _dnsmasq;

    public FirewallAndDnsmasqTests() => _dnsmasq = new Dnsmasq("/usr/sbin/dnsmasq", "lab0", _dir.Path, _dir.Path, _loop);

    public void Dispose()
    {
        _dnsmasq.Dispose();
        _loop.Dispose();
        _dir.Dispose();
    }

    private static NetworkConfig Config(params (string Key, string Value)[] keys) =>
        NetworkConfig.Parse(keys.ToDictionary(k => k.Key, k => k.Value));

    [Fact]
    public void WithoutNetworksTheTransactionOnlyRemovesTheTable()
    {
        string rules = new NftablesFirewall("/usr/sbin/nft", "sctest").Ruleset([]);
        Assert.Equal("table inet sctest\ndelete table inet sctest\n", rules);
    }

    [Fact]
    public void MasqueradesOnlyNetworksWithNat()
    {
        string rules = new NftablesFirewall("/usr/sbin/nft", "sctest").Ruleset(
        [
            ("natted", Config(("ipv4.address", "10.5.0.1/24"), ("ipv4.nat", "true"), ("ipv6.address", "fd42:5::1/64"), ("ipv6.nat", "true"))),
            ("plain", Config(("ipv4.address", "10.6.0.1/24"))),
        ]);
        Assert.StartsWith("table inet sctest\ndelete table inet sctest\ntable inet sctest {", rules);
        Assert.Contains("ip saddr 10.5.0.0/24 ip daddr != 10.5.0.0/24 masquerade", rules);
        Assert.Contains("ip6 saddr fd42:5::/64 ip6 daddr != fd42:5::/64 masquerade", rules);
        Assert.DoesNotContain("10.6.0.0/24", rules);
        Assert.Contains("iifname \"plain\" accept", rules);
        Assert.Contains("iifname \"natted\" udp dport { 53, 67, 547 } accept", rules);
    }

    [Fact]
    public void DnsmasqReadsNoHostConfigAndServesTheSubnets()
    {
        var d = _dnsmasq;
        var args = d.Arguments(Config(("ipv4.address", "10.5.0.1/24"), ("ipv6.address", "fd42:5::1/64"), ("dns.domain", "lab")));
        Assert.Contains("--conf-file=/dev/null", args);
        Assert.Contains("--no-hosts", args);
        Assert.Contains("--interface=lab0", args);
        Assert.Contains("--listen-address=10.5.0.1", args);
        Assert.Contains($"--hostsdir={d.HostsDir}", args);
        Assert.Contains("--dhcp-range=::,constructor:lab0,ra-stateless", args);
        // DHCPv4 is the engine's: dnsmasq gets no IPv4 range, so it opens no port 67.
        Assert.DoesNotContain(args, a => a.StartsWith("--dhcp-range=10.", StringComparison.Ordinal) || a.StartsWith("--dhcp-host", StringComparison.Ordinal));
        Assert.Contains("--domain=lab", args);
        Assert.Contains("--local=/lab/", args);
    }

    [Fact]
    public void ReadsIPv4AndIPv6LeasesAndSkipsTheDuid()
    {
        var d = _dnsmasq;
        File.WriteAllText(d.LeasesFile,
            "1795836770 0a:cd:aa:21:39:f2 10.138.7.119 web 01:0a:cd:aa:21:39:f2\n" +
            "duid 00:01:00:01:2c:ab:cd:ef:0a:cd:aa:21:39:f2\n" +
            "1795836771 1234 fd42:5::17 * 00:04:aa\n" +
            "garbage\n");
        var leases = d.ReadLeases();
        Assert.Equal(2, leases.Count);
        Assert.Equal(("web", "0a:cd:aa:21:39:f2", "10.138.7.119"), (leases[0].Hostname, leases[0].HwAddr, leases[0].Address));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1795836770), leases[0].Expires);
        Assert.Equal(("", "", "fd42:5::17"), (leases[1].Hostname, leases[1].HwAddr, leases[1].Address));
    }

    [Fact]
    public void WritesOneHostsFilePerNicReadableByDnsmasqsUserAndReadsThemBack()
    {
        var d = _dnsmasq;
        Directory.CreateDirectory(d.HostsDir);
        var dual = Config(("ipv4.address", "10.5.0.1/24"), ("ipv6.address", "fd42:5::1/64"), ("dns.domain", "lab"));
        d.WriteHost("0a:00:00:00:00:01", IPAddress.Parse("10.5.0.9"), "db", dual);
        d.WriteHost("0a:00:00:00:00:02", IPAddress.Parse("10.5.0.10"), "web", Config(("ipv4.address", "10.5.0.1/24")));
        string file = Path.Combine(d.HostsDir, "0a0000000001");
        // The AAAA name is the address SLAAC makes from the MAC (modified EUI-64: the universal/local bit flipped).
        Assert.Equal("10.5.0.9 db db.lab\nfd42:5::800:ff:fe00:1 db db.lab\n", File.ReadAllText(file));
        Assert.Equal("10.5.0.10 web web.sc\n", File.ReadAllText(Path.Combine(d.HostsDir, "0a0000000002")));
        Assert.True(File.GetUnixFileMode(file).HasFlag(UnixFileMode.OtherRead));
        // No temporary file is left for dnsmasq's inotify to read.
        Assert.Equal(2, Directory.GetFiles(d.HostsDir).Length);
        File.WriteAllText(Path.Combine(d.HostsDir, "planted"), "not,a-host\n");
        d.RemoveHost("0a:00:00:00:00:02");
        var hosts = d.ReadHosts();
        Assert.Equal(["0a:00:00:00:00:01"], hosts.Keys);
        Assert.Equal(("10.5.0.9", "db"), (hosts["0a:00:00:00:00:01"].Address.ToString(), hosts["0a:00:00:00:00:01"].Name));
        Assert.Equal([file], Directory.GetFiles(d.HostsDir));
    }
}

/// <summary>The rtnetlink client against the kernel, in a network namespace made for the test.</summary>
public sealed class RtNetlinkTests : IDisposable
{
    private readonly string _netns = $"sc-xunit-{Guid.NewGuid():N}"[..20];
    private readonly RtNetlink _netlink;
    private Process? _holder;

    public RtNetlinkTests()
    {
        Run("ip", "netns", "add", _netns);
        _netlink = RtNetlink.OpenIn($"/run/netns/{_netns}");
    }

    private string In(params string[] args) => Run(["ip", "-n", _netns, .. args]);

    private static string Run(params string[] args)
    {
        var psi = new ProcessStartInfo(args[0], args[1..]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{string.Join(' ', args)}: {output}");
        return output;
    }

    [Fact]
    public void CreatesABridgeUpAndAddressesIt()
    {
        _netlink.CreateBridge("tbr0", NetworkManager.BridgeMac("tbr0"));
        int index = _netlink.LinkIndex("tbr0") ?? throw new Xunit.Sdk.XunitException("no index");
        Assert.Contains("UP", In("-o", "link", "show", "tbr0"));
        Assert.Contains("bridge", In("-d", "-o", "link", "show", "tbr0"));
        Assert.Contains(string.Join(':', NetworkManager.BridgeMac("tbr0").GetAddressBytes().Select(b => b.ToString("x2"))), In("-o", "link", "show", "tbr0"));
        _netlink.AddAddress(index, IPAddress.Parse("10.66.0.1"), 24, "tbr0");
        _netlink.AddAddress(index, IPAddress.Parse("fd42:66::1"), 64, "tbr0");
        string addresses = In("-o", "addr", "show", "dev", "tbr0");
        Assert.Contains("inet 10.66.0.1/24", addresses);
        Assert.Contains("inet6 fd42:66::1/64", addresses);
        Assert.True(_netlink.DeleteAddress(index, IPAddress.Parse("10.66.0.1"), 24, "tbr0"));
        Assert.False(_netlink.DeleteAddress(index, IPAddress.Parse("10.66.0.1"), 24, "tbr0"));
        Assert.DoesNotContain("10.66.0.1", In("-o", "addr", "show", "dev", "tbr0"));
    }

    [Fact]
    public void ReportsKernelErrorsWithTheOperationAndErrno()
    {
        _netlink.CreateBridge("tbr1", NetworkManager.BridgeMac("tbr1"));
        var e = Assert.Throws<NativeException>(() => _netlink.CreateBridge("tbr1", NetworkManager.BridgeMac("tbr1")));
        Assert.Equal("cannot create bridge tbr1: EEXIST", e.Message);
        Assert.Null(_netlink.LinkIndex("nosuch0"));
        Assert.False(_netlink.DeleteLink("nosuch0"));
        Assert.True(_netlink.DeleteLink("tbr1"));
        Assert.Null(_netlink.LinkIndex("tbr1"));
    }

    [Fact]
    public void CreatesAVethWithItsPeerNamedInsideAnotherNamespace()
    {
        _netlink.CreateBridge("tbr2", NetworkManager.BridgeMac("tbr2"));
        int bridge = _netlink.LinkIndex("tbr2")!.Value;
        _holder = Process.Start("unshare", ["--net", "sleep", "60"]);
        // unshare execs sleep once the namespace is made.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (ReadLink($"/proc/{_holder.Id}/ns/net") == ReadLink("/proc/self/ns/net") || !File.ReadAllText($"/proc/{_holder.Id}/comm").StartsWith("sleep"))
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("unshare did not make its namespace");
            Thread.Sleep(10);
        }
        var mac = PhysicalAddress.Parse("0A-5C-01-02-03-04");
        _netlink.CreateVeth("tveth0", bridge, "eth5", mac, _holder.Id, 0);
        Assert.Contains("master tbr2", In("-o", "link", "show", "tveth0"));
        Assert.Contains("UP", In("-o", "link", "show", "tveth0"));
        string peer = Run("nsenter", "-t", _holder.Id.ToString(), "-n", "ip", "-o", "link", "show", "eth5");
        Assert.Contains("0a:5c:01:02:03:04", peer);
        Assert.Contains("state DOWN", peer);
        using (var inside = RtNetlink.OpenIn($"/proc/{_holder.Id}/ns/net"))
            inside.SetUp("eth5");
        Assert.Contains(",UP", Run("nsenter", "-t", _holder.Id.ToString(), "-n", "ip", "-o", "link", "show", "eth5"));
        Assert.Throws<NativeException>(() => _netlink.CreateVeth("tveth0", bridge, "eth6", mac, _holder.Id, 0));
        Assert.True(_netlink.DeleteLink("tveth0"));
        Assert.Throws<InvalidOperationException>(() => Run("nsenter", "-t", _holder.Id.ToString(), "-n", "ip", "link", "show", "eth5"));
    }

    private static string? ReadLink(string path) => new FileInfo(path).LinkTarget;

    public void Dispose()
    {
        _netlink.Dispose();
        if (_holder is { HasExited: false })
        {
            _holder.Kill();
            _holder.WaitForExit();
        }
        _holder?.Dispose();
        Run("ip", "netns", "del", _netns);
    }
}
