using System.Net;
using SystemContainers.Engine.Network;

namespace SystemContainers.Engine.Tests;

public class DhcpPacketTests
{
    private static DhcpPacket Request(DhcpMessageType type, string mac = "0a:12:34:56:78:9a", params (byte, byte[])[] options) => new()
    {
        TransactionId = 0xdeadbeef,
        Flags = 0x8000,
        HwAddr = mac,
        MessageType = type,
        Options = [.. options],
    };

    [Fact]
    public void WritesAndReadsBackARequest()
    {
        var bytes = Request(DhcpMessageType.Request, options: [(DhcpPacket.RequestedAddress, [10, 5, 0, 9]), (DhcpPacket.HostName, "db"u8.ToArray())]).ToBytes();
        Assert.Equal(300, bytes.Length);
        Assert.Equal([0x63, 0x82, 0x53, 0x63], bytes[236..240]);
        var p = DhcpPacket.Parse(bytes)!;
        Assert.Equal(0xdeadbeefu, p.TransactionId);
        Assert.True(p.WantsBroadcast);
        Assert.Equal("0a:12:34:56:78:9a", p.HwAddr);
        Assert.Equal(DhcpMessageType.Request, p.MessageType);
        Assert.Equal(IPAddress.Parse("10.5.0.9"), p.AddressOption(DhcpPacket.RequestedAddress));
        Assert.Equal("db"u8.ToArray(), p.Option(DhcpPacket.HostName));
        Assert.Null(p.Option(DhcpPacket.RapidCommit));
    }

    [Fact]
    public void RefusesMalformedPackets()
    {
        var good = Request(DhcpMessageType.Discover, options: [(DhcpPacket.HostName, "x"u8.ToArray())]).ToBytes();
        Assert.NotNull(DhcpPacket.Parse(good));
        Assert.Null(DhcpPacket.Parse(good[..200]));
        Assert.Null(DhcpPacket.Parse([]));
        var badMagic = (byte[])good.Clone();
        badMagic[237] = 0;
        Assert.Null(DhcpPacket.Parse(badMagic));
        var reply = (byte[])good.Clone();
        reply[0] = 2;
        Assert.Null(DhcpPacket.Parse(reply));
        var notEthernet = (byte[])good.Clone();
        notEthernet[1] = 6;
        Assert.Null(DhcpPacket.Parse(notEthernet));
        // Options: 53 1 1, then 12 1 'x' at 243; a length running past the end of the packet.
        var overrun = good[..246];
        overrun[244] = 200;
        Assert.Null(DhcpPacket.Parse(overrun));
        // No end option.
        Assert.Null(DhcpPacket.Parse(good[..246]));
        var noType = (byte[])good.Clone();
        noType[240] = 0;
        noType[241] = 0;
        noType[242] = 0;
        Assert.Null(DhcpPacket.Parse(noType));
        var badType = (byte[])good.Clone();
        badType[242] = 42;
        Assert.Null(DhcpPacket.Parse(badType));
    }
}

public sealed class DhcpServerTests : IDisposable
{
    private const string Mac = "0a:00:00:00:00:01";
    private static readonly IPAddress Address = IPAddress.Parse("10.5.0.9"), Server = IPAddress.Parse("10.5.0.1");
    private readonly TempDir _dir = new();
    private readonly DhcpServer _server;

    public DhcpServerTests()
    {
        _server = new DhcpServer("lab0", _dir.Path, Config());
        _server.SetHost(Mac, Address, "db");
    }

    public void Dispose()
    {
        _server.Dispose();
        _dir.Dispose();
    }

    private static NetworkConfig Config() => NetworkConfig.Parse(new Dictionary<string, string> { ["ipv4.address"] = "10.5.0.1/24", ["dns.domain"] = "lab" });

    private static DhcpPacket From(string mac, DhcpMessageType type, IPAddress? client = null, params (byte, byte[])[] options) => new()
    {
        TransactionId = 7,
        HwAddr = mac,
        MessageType = type,
        ClientAddress = client ?? IPAddress.Any,
        Options = [.. options],
    };

    private (DhcpPacket Packet, IPEndPoint To)? Answer(DhcpPacket request) =>
        // Through the wire format both ways, as the socket carries it.
        _server.Answer(DhcpPacket.Parse(request.ToBytes())!) is { } r ? (Reparse(r.Packet), r.To) : null;

    private static DhcpPacket Reparse(DhcpPacket reply)
    {
        var bytes = reply.ToBytes();
        bytes[0] = 1;
        return DhcpPacket.Parse(bytes)!;
    }

    [Fact]
    public void OffersThePlannedAddressWithTheNetworksOptionsAndAcksItsRequest()
    {
        var (offer, to) = Answer(From(Mac, DhcpMessageType.Discover))!.Value;
        Assert.Equal(DhcpMessageType.Offer, offer.MessageType);
        Assert.Equal(Address, offer.YourAddress);
        Assert.Equal(new IPEndPoint(IPAddress.Broadcast, 68), to);
        Assert.Equal(Server, offer.AddressOption(DhcpPacket.ServerId));
        Assert.Equal(Server, offer.AddressOption(DhcpPacket.Router));
        Assert.Equal(Server, offer.AddressOption(DhcpPacket.DnsServer));
        Assert.Equal(IPAddress.Parse("255.255.255.0"), offer.AddressOption(DhcpPacket.SubnetMask));
        Assert.Equal(IPAddress.Parse("10.5.0.255"), offer.AddressOption(DhcpPacket.Broadcast));
        Assert.Equal("lab"u8.ToArray(), offer.Option(DhcpPacket.DomainName));
        Assert.Equal("db"u8.ToArray(), offer.Option(DhcpPacket.HostName));
        Assert.Equal([0, 0, 0x0e, 0x10], offer.Option(DhcpPacket.LeaseTime));
        Assert.Equal([0, 0, 0x07, 0x08], offer.Option(DhcpPacket.RenewalTime));
        Assert.Empty(_server.Leases());
        var (ack, _) = Answer(From(Mac, DhcpMessageType.Request, options: [(DhcpPacket.ServerId, [10, 5, 0, 1]), (DhcpPacket.RequestedAddress, [10, 5, 0, 9])]))!.Value;
        Assert.Equal(DhcpMessageType.Ack, ack.MessageType);
        Assert.Equal(Address, ack.YourAddress);
        var lease = Assert.Single(_server.Leases());
        Assert.Equal(("db", Mac, "10.5.0.9"), (lease.Hostname, lease.HwAddr, lease.Address));
        Assert.InRange(lease.Expires!.Value, DateTimeOffset.UtcNow.AddMinutes(59), DateTimeOffset.UtcNow.AddMinutes(61));
    }

    [Fact]
    public void AnswersARapidCommitDiscoverWithAnAckAndRenewsByUnicast()
    {
        var (ack, to) = Answer(From(Mac, DhcpMessageType.Discover, options: [(DhcpPacket.RapidCommit, [])]))!.Value;
        Assert.Equal(DhcpMessageType.Ack, ack.MessageType);
        Assert.NotNull(ack.Option(DhcpPacket.RapidCommit));
        Assert.Equal(IPAddress.Broadcast, to.Address);
        Assert.Single(_server.Leases());
        var (renewed, renewTo) = Answer(From(Mac, DhcpMessageType.Request, Address))!.Value;
        Assert.Equal(DhcpMessageType.Ack, renewed.MessageType);
        Assert.Equal(new IPEndPoint(Address, 68), renewTo);
        Assert.Equal(Address, renewed.YourAddress);
    }

    [Fact]
    public void NaksAnotherAddressIgnoresAnotherServerAndUnknownMacs()
    {
        var (nak, to) = Answer(From(Mac, DhcpMessageType.Request, options: [(DhcpPacket.RequestedAddress, [10, 5, 0, 77])]))!.Value;
        Assert.Equal(DhcpMessageType.Nak, nak.MessageType);
        Assert.Equal(IPAddress.Any, nak.YourAddress);
        Assert.Equal(IPAddress.Broadcast, to.Address);
        Assert.Null(Answer(From(Mac, DhcpMessageType.Request, options: [(DhcpPacket.ServerId, [10, 5, 0, 2]), (DhcpPacket.RequestedAddress, [10, 5, 0, 9])])));
        Assert.Null(Answer(From("0a:00:00:00:00:99", DhcpMessageType.Discover)));
        Assert.Null(Answer(From("0a:00:00:00:00:99", DhcpMessageType.Discover, options: [(DhcpPacket.RapidCommit, [])])));
        Assert.Empty(_server.Leases());
    }

    [Fact]
    public void InformGetsOptionsButNoLease()
    {
        var (ack, to) = Answer(From(Mac, DhcpMessageType.Inform, Address))!.Value;
        Assert.Equal(DhcpMessageType.Ack, ack.MessageType);
        Assert.Equal(IPAddress.Any, ack.YourAddress);
        Assert.Null(ack.Option(DhcpPacket.LeaseTime));
        Assert.Equal(Server, ack.AddressOption(DhcpPacket.Router));
        Assert.Equal(new IPEndPoint(Address, 68), to);
        Assert.Empty(_server.Leases());
    }

    [Fact]
    public void LeasesOutlastTheServerAndEndOnReleaseDeclineRemovalOrANewAddress()
    {
        Answer(From(Mac, DhcpMessageType.Discover, options: [(DhcpPacket.RapidCommit, [])]));
        string file = Path.Combine(_dir.Path, "dhcp-leases", "0a0000000001");
        Assert.Matches(@"^\d+ 10\.5\.0\.9 0a:00:00:00:00:01 db\n$", File.ReadAllText(file));
        File.WriteAllText(Path.Combine(_dir.Path, "dhcp-leases", "garbage"), "not a lease\n");
        using (var next = new DhcpServer("lab0", _dir.Path, Config()))
        {
            Assert.Equal("10.5.0.9", Assert.Single(next.Leases()).Address);
            // A lease of a MAC no NIC has any more ends at the start.
            next.EndLeasesWithoutHost();
            Assert.Empty(next.Leases());
        }
        Assert.Equal([], Directory.GetFiles(Path.Combine(_dir.Path, "dhcp-leases")));
        _server.Dispose();
        Answer(From(Mac, DhcpMessageType.Request, Address));
        Assert.Null(Answer(From(Mac, DhcpMessageType.Release, IPAddress.Parse("10.5.0.8"), (DhcpPacket.ServerId, [10, 5, 0, 1]))));
        Assert.Single(_server.Leases());
        Assert.Null(Answer(From(Mac, DhcpMessageType.Release, Address, (DhcpPacket.ServerId, [10, 5, 0, 1]))));
        Assert.Empty(_server.Leases());
        Answer(From(Mac, DhcpMessageType.Request, Address));
        Assert.Null(Answer(From(Mac, DhcpMessageType.Decline, options: [(DhcpPacket.RequestedAddress, [10, 5, 0, 9])])));
        Assert.Empty(_server.Leases());
        Answer(From(Mac, DhcpMessageType.Request, Address));
        _server.SetHost(Mac, Address, "renamed");
        Assert.Equal("renamed", Assert.Single(_server.Leases()).Hostname);
        _server.SetHost(Mac, IPAddress.Parse("10.5.0.10"), "renamed");
        Assert.Empty(_server.Leases());
        Answer(From(Mac, DhcpMessageType.Request, IPAddress.Parse("10.5.0.10")));
        _server.RemoveHost(Mac);
        Assert.Empty(_server.Leases());
        Assert.False(File.Exists(file));
        Assert.Null(Answer(From(Mac, DhcpMessageType.Discover)));
    }
}
