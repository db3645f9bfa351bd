using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Network;

/// <summary>
/// A NETLINK_ROUTE client: links, bridges, veth pairs and addresses, with no `ip` processes.
/// The socket belongs to the network namespace of the thread that opened it, and every
/// request acts there.
/// </summary>
/// <summary>A link as the kernel reports it; Peer is IFLA_LINK (for a veth, its peer's index in the peer's namespace).</summary>
public sealed record LinkInfo(int Index, string Name, int? Peer);

public sealed unsafe class RtNetlink : IDisposable
{
    private const int AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000, NETLINK_ROUTE = 0;
    private const ushort RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_DELADDR = 21;
    private const ushort NLMSG_ERROR = 2, NLMSG_DONE = 3;
    private const ushort NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400;
    private const ushort IFLA_ADDRESS = 1, IFLA_IFNAME = 3, IFLA_MTU = 4, IFLA_LINK = 5, IFLA_MASTER = 10, IFLA_LINKINFO = 18,
        IFLA_NET_NS_PID = 19, IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;
    private const ushort RTM_NEWROUTE = 24, RTA_DST = 1, RTA_OIF = 4, RTA_GATEWAY = 5;
    private const byte RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RTN_UNICAST = 1;
    private const ushort IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_FLAGS = 8;
    private const uint IFF_UP = 1, IFA_F_NODAD = 2;
    public const int ENODEV = 19, EADDRNOTAVAIL = 99;

    private readonly SafeFd _socket;
    private readonly Lock _lock = new();
    private uint _seq;

    public RtNetlink()
    {
        int fd = Libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0) throw NativeException.FromLastError("open netlink socket");
        _socket = new SafeFd(fd);
    }

    /// <summary>
    /// Creates a bridge, up, with spanning tree off (the default) so new ports forward at once.
    /// Its MAC address is set, not taken from its lowest port: otherwise it would change as
    /// containers come and go, and every container's ARP entry for the gateway would go stale.
    /// </summary>
    public void CreateBridge(string name, PhysicalAddress mac, int mtu = 0)
    {
        var m = new Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).IfInfo(0, IFF_UP).String(IFLA_IFNAME, name)
            .Bytes(IFLA_ADDRESS, mac.GetAddressBytes());
        if (mtu > 0) m.U32(IFLA_MTU, (uint)mtu);
        int info = m.Begin(IFLA_LINKINFO);
        m.String(IFLA_INFO_KIND, "bridge");
        m.End(info);
        Request(m, "create bridge", name);
    }

    /// <summary>
    /// Creates a veth pair in one request: the host end attached to a bridge and up, the peer
    /// created straight in the network namespace of pid with its final name and MAC. The peer
    /// stays down: the kernel refuses to open it before its other end exists (ENOTCONN).
    /// </summary>
    public void CreateVeth(string hostName, int masterIndex, string peerName, PhysicalAddress peerMac, int peerNetnsPid, int mtu)
    {
        var m = new Message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).IfInfo(0, IFF_UP)
            .String(IFLA_IFNAME, hostName).U32(IFLA_MASTER, (uint)masterIndex);
        if (mtu > 0) m.U32(IFLA_MTU, (uint)mtu);
        int info = m.Begin(IFLA_LINKINFO);
        m.String(IFLA_INFO_KIND, "veth");
        int data = m.Begin(IFLA_INFO_DATA);
        int peer = m.Begin(VETH_INFO_PEER);
        m.IfInfo(0, 0).String(IFLA_IFNAME, peerName).Bytes(IFLA_ADDRESS, peerMac.GetAddressBytes())
            .U32(IFLA_NET_NS_PID, (uint)peerNetnsPid);
        if (mtu > 0) m.U32(IFLA_MTU, (uint)mtu);
        m.End(peer);
        m.End(data);
        m.End(info);
        Request(m, "create veth", $"{hostName} (peer {peerName} in pid {peerNetnsPid})");
    }

    /// <summary>
    /// Adds an IPv4 route through the link: to destination/prefixLength (0.0.0.0/0 for the
    /// default), via gateway, or on the link itself when gateway is null.
    /// </summary>
    public void AddRoute(int index, IPAddress destination, int prefixLength, IPAddress? gateway, string linkName)
    {
        var m = new Message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        m.Header(12, h =>
        {
            h[0] = 2;
            h[1] = (byte)prefixLength;
            h[4] = RT_TABLE_MAIN;
            h[5] = RTPROT_BOOT;
            h[6] = gateway is null ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
            h[7] = RTN_UNICAST;
        });
        if (prefixLength > 0) m.Bytes(RTA_DST, destination.GetAddressBytes());
        if (gateway is not null) m.Bytes(RTA_GATEWAY, gateway.GetAddressBytes());
        m.U32(RTA_OIF, (uint)index);
        Request(m, "add route", $"{destination}/{prefixLength}{(gateway is null ? "" : $" via {gateway}")} on {linkName}");
    }

    /// <summary>Brings an existing link up.</summary>
    public void SetUp(string name)
    {
        var m = new Message(RTM_NEWLINK, 0).IfInfo(0, IFF_UP).String(IFLA_IFNAME, name);
        Request(m, "bring up", name);
    }

    /// <summary>Moves a link of this namespace into the network namespace of pid (it goes down there).</summary>
    public void MoveToNetns(string name, int pid)
    {
        var m = new Message(RTM_NEWLINK, 0).IfInfo(0, 0).String(IFLA_IFNAME, name).U32(IFLA_NET_NS_PID, (uint)pid);
        Request(m, "move to the network namespace of pid " + pid, name);
    }

    /// <summary>Makes an existing link a port of the bridge at masterIndex, and brings it up.</summary>
    public void SetMasterUp(string name, int masterIndex)
    {
        var m = new Message(RTM_NEWLINK, 0).IfInfo(0, IFF_UP).String(IFLA_IFNAME, name).U32(IFLA_MASTER, (uint)masterIndex);
        Request(m, "attach to bridge #" + masterIndex, name);
    }

    /// <summary>A client for another network namespace (a /proc/PID/ns/net or /run/netns/NAME path).</summary>
    public static RtNetlink OpenIn(string path) => NetworkNamespaceThread.Run(path, () => new RtNetlink());

    /// <summary>Deletes a link; false when there was none of that name.</summary>
    public bool DeleteLink(string name) =>
        TryRequest(new Message(RTM_DELLINK, 0).IfInfo(0, 0).String(IFLA_IFNAME, name), "delete link", name, ENODEV, out _);

    /// <summary>Deletes a link by index (a name may already belong to a newer link); false when it is gone.</summary>
    public bool DeleteLink(int index) =>
        TryRequest(new Message(RTM_DELLINK, 0).IfInfo(index, 0), "delete link", $"#{index}", ENODEV, out _);

    /// <summary>The interface index of a link, or null when there is none of that name.</summary>
    public int? LinkIndex(string name) => Link(name)?.Index;

    /// <summary>A link by name, or null when there is none.</summary>
    public LinkInfo? Link(string name) =>
        TryRequest(new Message(RTM_GETLINK, 0).IfInfo(0, 0).String(IFLA_IFNAME, name), "look up link", name, ENODEV, out var reply)
            ? ParseLink(reply) : null;

    /// <summary>A link by index, or null when there is none.</summary>
    public LinkInfo? Link(int index) =>
        TryRequest(new Message(RTM_GETLINK, 0).IfInfo(index, 0), "look up link", $"#{index}", ENODEV, out var reply)
            ? ParseLink(reply) : null;

    /// <summary>An RTM_NEWLINK reply: the ifinfomsg's index, then the name and IFLA_LINK attributes.</summary>
    private static LinkInfo? ParseLink(byte[]? reply)
    {
        if (reply is null || reply.Length < 32) return null;
        int index = BinaryPrimitives.ReadInt32LittleEndian(reply.AsSpan(16 + 4));
        string name = "";
        int? peer = null;
        for (int off = 32; off + 4 <= reply.Length;)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(off));
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(off + 2));
            if (len < 4 || off + len > reply.Length) break;
            var value = reply.AsSpan(off + 4, len - 4);
            if (type == IFLA_IFNAME) name = System.Text.Encoding.ASCII.GetString(value).TrimEnd('\0');
            else if (type == IFLA_LINK && value.Length >= 4) peer = BinaryPrimitives.ReadInt32LittleEndian(value);
            off += (len + 3) & ~3;
        }
        return new LinkInfo(index, name, peer);
    }

    /// <summary>The hardware address of a link, or null when there is no link of that name (or it has none).</summary>
    public PhysicalAddress? LinkAddress(string name)
    {
        if (!TryRequest(new Message(RTM_GETLINK, 0).IfInfo(0, 0).String(IFLA_IFNAME, name), "look up link", name, ENODEV, out var reply) || reply is null)
            return null;
        // nlmsghdr (16 bytes) and ifinfomsg (16), then attributes: length, type, payload, padded to 4.
        for (int off = 32; off + 4 <= reply.Length;)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(off));
            int type = BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(off + 2));
            if (len < 4 || off + len > reply.Length) break;
            if (type == IFLA_ADDRESS) return new PhysicalAddress(reply.AsSpan(off + 4, len - 4).ToArray());
            off += (len + 3) & ~3;
        }
        return null;
    }

    public void AddAddress(int index, IPAddress address, int prefixLength, string linkName) =>
        Request(AddressMessage(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index, address, prefixLength), "add address", $"{address}/{prefixLength} on {linkName}");

    /// <summary>Removes an address; false when the link did not have it.</summary>
    public bool DeleteAddress(int index, IPAddress address, int prefixLength, string linkName) =>
        TryRequest(AddressMessage(RTM_DELADDR, 0, index, address, prefixLength), "delete address", $"{address}/{prefixLength} on {linkName}",
            EADDRNOTAVAIL, out _);

    private static Message AddressMessage(ushort type, ushort flags, int index, IPAddress address, int prefixLength)
    {
        bool v6 = address.AddressFamily == AddressFamily.InterNetworkV6;
        byte[] bytes = address.GetAddressBytes();
        var m = new Message(type, flags);
        m.Header(8, h =>
        {
            h[0] = (byte)(v6 ? 10 : 2);
            h[1] = (byte)prefixLength;
            BinaryPrimitives.WriteInt32LittleEndian(h[4..], index);
        });
        m.Bytes(IFA_LOCAL, bytes).Bytes(IFA_ADDRESS, bytes);
        // The bridge owns its subnet: duplicate address detection would only delay dnsmasq's bind.
        if (v6) m.U32(IFA_FLAGS, IFA_F_NODAD);
        return m;
    }

    /// <summary>A request whose target may be gone: false when the kernel answers with goneErrno.</summary>
    private bool TryRequest(Message message, string operation, string subject, int goneErrno, out byte[]? reply)
    {
        try
        {
            reply = Request(message, operation, subject);
            return true;
        }
        catch (NativeException e) when (e.Errno == goneErrno)
        {
            reply = null;
            return false;
        }
    }

    /// <summary>Sends one request and waits for its acknowledgement; returns the reply payload of a GET.</summary>
    private byte[]? Request(Message message, string operation, string subject)
    {
        lock (_lock)
        {
            uint seq = ++_seq;
            byte[] request = message.Finish(seq);
            fixed (byte* p = request)
                while (Libc.send(_socket.Fd, p, request.Length, 0) < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno != Libc.EINTR) throw new NativeException(errno, operation, subject);
                }
            byte[] buffer = new byte[65536];
            byte[]? reply = null;
            for (;;)
            {
                nint n;
                fixed (byte* p = buffer)
                    n = Libc.recv(_socket.Fd, p, buffer.Length, 0);
                if (n < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.EINTR) continue;
                    throw new NativeException(errno, operation, subject);
                }
                for (int off = 0; off + 16 <= n;)
                {
                    var span = buffer.AsSpan(off, (int)n - off);
                    int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(span);
                    ushort type = BinaryPrimitives.ReadUInt16LittleEndian(span[4..]);
                    uint msgSeq = BinaryPrimitives.ReadUInt32LittleEndian(span[8..]);
                    if (len < 16 || len > span.Length) throw new NativeException(Libc.EIO, operation, subject);
                    if (msgSeq == seq)
                    {
                        if (type == NLMSG_ERROR)
                        {
                            int error = BinaryPrimitives.ReadInt32LittleEndian(span[16..]);
                            if (error != 0) throw new NativeException(-error, operation, subject);
                            return reply;
                        }
                        if (type == NLMSG_DONE) return reply;
                        reply ??= span[..len].ToArray();
                    }
                    off += (len + 3) & ~3;
                }
            }
        }
    }

    public void Dispose() => _socket.Dispose();

    /// <summary>A netlink message under construction: header, family header, attributes (nested by offset).</summary>
    private sealed class Message
    {
        private readonly List<byte> _b = new(256);

        public Message(ushort type, ushort flags)
        {
            _b.AddRange(new byte[16]);
            BinaryPrimitives.WriteUInt16LittleEndian(Span(4, 2), type);
            BinaryPrimitives.WriteUInt16LittleEndian(Span(6, 2), (ushort)(flags | NLM_F_REQUEST | NLM_F_ACK));
        }

        private Span<byte> Span(int offset, int length) => CollectionsMarshal.AsSpan(_b).Slice(offset, length);

        public Message Header(int size, SpanAction fill)
        {
            int at = _b.Count;
            _b.AddRange(new byte[size]);
            fill(Span(at, size));
            return this;
        }

        public delegate void SpanAction(Span<byte> header);

        /// <summary>struct ifinfomsg with the given flags set (and only those changed).</summary>
        public Message IfInfo(int index, uint flags) => Header(16, h =>
        {
            BinaryPrimitives.WriteInt32LittleEndian(h[4..], index);
            BinaryPrimitives.WriteUInt32LittleEndian(h[8..], flags);
            BinaryPrimitives.WriteUInt32LittleEndian(h[12..], flags);
        });

        public Message Bytes(ushort type, ReadOnlySpan<byte> payload)
        {
            int at = Begin(type);
            _b.AddRange(payload.ToArray());
            End(at);
            return this;
        }

        public Message String(ushort type, string value) => Bytes(type, System.Text.Encoding.ASCII.GetBytes(value + "\0"));

        public Message U32(ushort type, uint value)
        {
            Span<byte> v = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(v, value);
            return Bytes(type, v);
        }

        public int Begin(ushort type)
        {
            int at = _b.Count;
            _b.AddRange(new byte[4]);
            BinaryPrimitives.WriteUInt16LittleEndian(Span(at + 2, 2), type);
            return at;
        }

        public void End(int at)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(Span(at, 2), (ushort)(_b.Count - at));
            while (_b.Count % 4 != 0) _b.Add(0);
        }

        public byte[] Finish(uint seq)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(Span(0, 4), (uint)_b.Count);
            BinaryPrimitives.WriteUInt32LittleEndian(Span(8, 4), seq);
            return _b.ToArray();
        }
    }
}
