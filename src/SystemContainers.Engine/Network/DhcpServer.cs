using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Network;

/// <summary>
/// The DHCPv4 server of one bridge. The network manager decides every NIC's address when the
/// container is created; this server only hands that address to the NIC's MAC (and to no other
/// MAC), so each packet and each container costs a dictionary look-up, whatever the number of
/// containers. dnsmasq did the same with a static range and a hosts directory, but walked every
/// lease and every host for each packet and each new host file.
/// Leases are one file per MAC in the network's state directory, so they outlast a daemon restart
/// and are read back by the next daemon; while no daemon runs, clients keep their leases until
/// they expire (an hour), and renew from the next one.
/// </summary>
public sealed class DhcpServer : IDisposable
{
    public static readonly TimeSpan LeaseTime = TimeSpan.FromHours(1);
    private const int SolSocket = 1, SoBindToDevice = 25;
    private const long MaxUnixSeconds = 253402300799;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (IPAddress Address, string Name)> _hosts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NetworkLease> _leases = new(StringComparer.Ordinal);
    private NetworkConfig _config;
    private Socket? _socket;
    private CancellationTokenSource? _stop;
    private Task? _serving;

    public DhcpServer(string bridge, string stateDir, NetworkConfig config)
    {
        Bridge = bridge;
        LeasesDir = Path.Combine(stateDir, "dhcp-leases");
        _config = config;
        LoadLeases();
    }

    public string Bridge { get; }

    /// <summary>One file per leased MAC: "expiry address mac name", expiry in Unix seconds.</summary>
    public string LeasesDir { get; }

    /// <summary>Answers on the bridge from now on; an error if port 67 cannot be bound there.</summary>
    public void Start()
    {
        lock (_lock)
        {
            if (_socket is not null) return;
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            try
            {
                // Bound to the bridge before the bind, so each bridge's server has port 67 of its own. No
                // SO_REUSEADDR: another server on this bridge's port 67 must be an error, not a silent share.
                socket.SetRawSocketOption(SolSocket, SoBindToDevice, Encoding.ASCII.GetBytes(Bridge + "\0"));
                socket.EnableBroadcast = true;
                socket.Bind(new IPEndPoint(IPAddress.Any, DhcpPacket.ServerPort));
            }
            catch (SocketException e)
            {
                socket.Dispose();
                throw new EngineException(FailureKind.Failed, "DhcpServerFailed",
                    $"cannot serve DHCP on {Bridge}: bind 0.0.0.0:{DhcpPacket.ServerPort}: {e.Message} (errno {e.NativeErrorCode})", e);
            }
            _socket = socket;
            _stop = new CancellationTokenSource();
            _serving = Serve(socket, _stop.Token);
        }
    }

    /// <summary>Stops answering and closes the socket (leases stay on disk).</summary>
    public void Stop()
    {
        Task? serving;
        lock (_lock)
        {
            if (_socket is null) return;
            _stop!.Cancel();
            serving = _serving;
            _socket.Dispose();
            _socket = null;
        }
        try { serving?.Wait(); }
        catch (AggregateException) { }
        _stop!.Dispose();
        _stop = null;
    }

    public void Dispose() => Stop();

    /// <summary>A changed network: replies carry its mask, router and domain from now on.</summary>
    public void Configure(NetworkConfig config)
    {
        lock (_lock) _config = config;
    }

    /// <summary>The address and name this MAC gets; a lease of another address ends, since no client may keep it.</summary>
    public void SetHost(string mac, IPAddress address, string name)
    {
        lock (_lock)
        {
            _hosts[mac] = (address, name);
            if (_leases.TryGetValue(mac, out var lease) && lease.Address != address.ToString()) EndLease(mac);
            else if (lease is not null && lease.Hostname != name) SaveLease(lease with { Hostname = name });
        }
    }

    /// <summary>This MAC gets no answer any more, and its lease ends at once (a removed container's NIC).</summary>
    public void RemoveHost(string mac)
    {
        lock (_lock)
        {
            _hosts.Remove(mac);
            EndLease(mac);
        }
    }

    /// <summary>At daemon start, once every NIC is planned: leases of MACs no NIC has any more end.</summary>
    public void EndLeasesWithoutHost()
    {
        lock (_lock)
            foreach (var mac in _leases.Keys.Where(m => !_hosts.ContainsKey(m)).ToList()) EndLease(mac);
    }

    /// <summary>The leases not yet expired.</summary>
    public IReadOnlyList<NetworkLease> Leases()
    {
        var now = DateTimeOffset.UtcNow;
        lock (_lock) return _leases.Values.Where(l => l.Expires > now).OrderBy(l => l.HwAddr, StringComparer.Ordinal).ToList();
    }

    private async Task Serve(Socket socket, CancellationToken stop)
    {
        var buffer = new byte[1500];
        EndPoint any = new IPEndPoint(IPAddress.Any, 0);
        while (!stop.IsCancellationRequested)
        {
            int length;
            try
            {
                length = (await socket.ReceiveFromAsync(buffer, SocketFlags.None, any, stop)).ReceivedBytes;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException) { return; }
            catch (SocketException e)
            {
                if (stop.IsCancellationRequested) return;
                EngineLog.Write($"DHCP on {Bridge}: receive: {e.Message}");
                continue;
            }
            // A packet that breaks the parser or the reply is dropped: the next one is served all the same.
            try
            {
                if (DhcpPacket.Parse(buffer.AsSpan(0, length)) is { } request && Answer(request) is { } reply)
                    socket.SendTo(reply.Packet.ToBytes(), Destination(socket, request, reply));
            }
            catch (Exception e) when (e is SocketException or ArgumentException or IOException or NativeException)
            {
                EngineLog.Write($"DHCP on {Bridge}: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Where a reply goes: as Answer says, but a client without an address that did not ask for
    /// broadcasts hears by unicast to its new address and MAC (RFC 2131 4.1), so one container's
    /// start does not wake every other NIC on the bridge. The kernel learns that address's MAC
    /// first, since the client cannot answer ARP for it yet; if it will not, the reply is broadcast.
    /// </summary>
    private IPEndPoint Destination(Socket socket, DhcpPacket request, (DhcpPacket Packet, IPEndPoint To) reply)
    {
        var yours = reply.Packet.YourAddress;
        if (!reply.To.Address.Equals(IPAddress.Broadcast) || request.WantsBroadcast || yours.Equals(IPAddress.Any)
            || reply.Packet.MessageType == DhcpMessageType.Nak)
            return reply.To;
        try
        {
            Sys.SetArpEntry(socket.Handle, Bridge, yours, Convert.FromHexString(request.HwAddr.Replace(":", "")));
            return new IPEndPoint(yours, DhcpPacket.ClientPort);
        }
        catch (NativeException e)
        {
            EngineLog.Write($"DHCP on {Bridge}: {e.Message}; broadcasting the reply");
            return reply.To;
        }
    }

    /// <summary>The reply to a client's message and where it goes, or null when none is due.</summary>
    internal (DhcpPacket Packet, IPEndPoint To)? Answer(DhcpPacket request)
    {
        lock (_lock)
        {
            // A relayed request comes from another link: this server serves its bridge only.
            if (!request.RelayAddress.Equals(IPAddress.Any)) return null;
            if (!_hosts.TryGetValue(request.HwAddr, out var host)) return null;
            var server = _config.IPv4.Address;
            var serverId = request.AddressOption(DhcpPacket.ServerId);
            bool oursOrNone = serverId is null || serverId.Equals(server);
            switch (request.MessageType)
            {
                case DhcpMessageType.Discover:
                    if (request.Option(DhcpPacket.RapidCommit) is not null)
                    {
                        Lease(request.HwAddr, host);
                        return Reply(request, DhcpMessageType.Ack, host, withLease: true, rapid: true);
                    }
                    return Reply(request, DhcpMessageType.Offer, host, withLease: true);
                case DhcpMessageType.Request:
                    if (!oursOrNone) return null;
                    var wanted = request.AddressOption(DhcpPacket.RequestedAddress)
                        ?? (request.ClientAddress.Equals(IPAddress.Any) ? null : request.ClientAddress);
                    if (!host.Address.Equals(wanted)) return Reply(request, DhcpMessageType.Nak, host, withLease: false);
                    Lease(request.HwAddr, host);
                    return Reply(request, DhcpMessageType.Ack, host, withLease: true);
                case DhcpMessageType.Inform:
                    return Reply(request, DhcpMessageType.Ack, host, withLease: false);
                case DhcpMessageType.Release:
                    if (oursOrNone && request.ClientAddress.Equals(host.Address)) EndLease(request.HwAddr);
                    return null;
                case DhcpMessageType.Decline:
                    if (oursOrNone && host.Address.Equals(request.AddressOption(DhcpPacket.RequestedAddress)))
                    {
                        EngineLog.Write($"DHCP on {Bridge}: {request.HwAddr} declined {host.Address}: another machine on the bridge answers for it");
                        EndLease(request.HwAddr);
                    }
                    return null;
                default:
                    return null;
            }
        }
    }

    private (DhcpPacket, IPEndPoint) Reply(DhcpPacket request, DhcpMessageType type, (IPAddress Address, string Name) host, bool withLease, bool rapid = false)
    {
        var c = _config;
        var server = c.IPv4.Address;
        var options = new List<(byte, byte[])> { (DhcpPacket.ServerId, DhcpPacket.Address(server)) };
        if (type != DhcpMessageType.Nak)
        {
            if (withLease)
            {
                options.Add((DhcpPacket.LeaseTime, DhcpPacket.Seconds(LeaseTime)));
                options.Add((DhcpPacket.RenewalTime, DhcpPacket.Seconds(LeaseTime / 2)));
                options.Add((DhcpPacket.RebindingTime, DhcpPacket.Seconds(LeaseTime * 7 / 8)));
            }
            options.Add((DhcpPacket.SubnetMask, DhcpPacket.Address(c.IPv4.Netmask)));
            options.Add((DhcpPacket.Broadcast, DhcpPacket.Address(c.IPv4.BroadcastAddress)));
            options.Add((DhcpPacket.Router, DhcpPacket.Address(server)));
            options.Add((DhcpPacket.DnsServer, DhcpPacket.Address(server)));
            options.Add((DhcpPacket.DomainName, DhcpPacket.Text(c.Domain)));
            options.Add((DhcpPacket.HostName, DhcpPacket.Text(host.Name)));
            if (rapid) options.Add((DhcpPacket.RapidCommit, []));
        }
        var reply = new DhcpPacket
        {
            IsReply = true,
            TransactionId = request.TransactionId,
            Flags = request.Flags,
            ClientAddress = type == DhcpMessageType.Nak ? IPAddress.Any : request.ClientAddress,
            YourAddress = withLease ? host.Address : IPAddress.Any,
            ServerAddress = server,
            HwAddr = request.HwAddr,
            MessageType = type,
            Options = options,
        };
        // A client with an address (renewing, or asking for options) hears by unicast; one without hears a broadcast on the bridge.
        bool unicast = type != DhcpMessageType.Nak && !request.ClientAddress.Equals(IPAddress.Any);
        return (reply, new IPEndPoint(unicast ? request.ClientAddress : IPAddress.Broadcast, DhcpPacket.ClientPort));
    }

    // Whole seconds, as the lease file keeps them: a lease read back by the next daemon is the same lease.
    private void Lease(string mac, (IPAddress Address, string Name) host) =>
        SaveLease(new NetworkLease(host.Name, mac, host.Address.ToString(), "dynamic",
            DateTimeOffset.FromUnixTimeSeconds(DateTimeOffset.UtcNow.Add(LeaseTime).ToUnixTimeSeconds())));

    private void SaveLease(NetworkLease lease)
    {
        _leases[lease.HwAddr] = lease;
        // Derived state a lost write costs nothing of (the client renews, and gets the same address): no fsync.
        try
        {
            Directory.CreateDirectory(LeasesDir);
            string line = string.Create(CultureInfo.InvariantCulture, $"{lease.Expires!.Value.ToUnixTimeSeconds()} {lease.Address} {lease.HwAddr} {lease.Hostname}\n");
            Sys.WriteFileAtomic(LeaseFile(lease.HwAddr), Encoding.ASCII.GetBytes(line), durable: false);
        }
        catch (Exception e) when (e is IOException or NativeException or UnauthorizedAccessException)
        {
            EngineLog.Write($"DHCP on {Bridge}: cannot record the lease of {lease.HwAddr}: {e.Message}");
        }
    }

    private void EndLease(string mac)
    {
        if (!_leases.Remove(mac)) return;
        try { File.Delete(LeaseFile(mac)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            EngineLog.Write($"DHCP on {Bridge}: cannot remove the lease of {mac}: {e.Message}");
        }
    }

    private string LeaseFile(string mac) => Path.Combine(LeasesDir, mac.Replace(":", ""));

    /// <summary>The leases a previous daemon recorded; a file that does not parse, or an expired lease, goes.</summary>
    private void LoadLeases()
    {
        if (!Directory.Exists(LeasesDir)) return;
        var now = DateTimeOffset.UtcNow;
        foreach (var file in Directory.EnumerateFiles(LeasesDir))
        {
            var f = File.ReadAllText(file).TrimEnd('\n').Split(' ');
            if (f.Length == 4 && long.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out long expiry) && expiry < MaxUnixSeconds
                && IpSubnet.TryParseAddress(f[1], v6: false, out var address) && LeaseFile(f[2]) == file
                && DateTimeOffset.FromUnixTimeSeconds(expiry) is var expires && expires > now)
                _leases[f[2]] = new NetworkLease(f[3], f[2], address.ToString(), "dynamic", expires);
            else
                File.Delete(file);
        }
    }
}
