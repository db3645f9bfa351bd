using System.Buffers.Binary;
using System.Net;
using System.Text;

namespace SystemContainers.Engine.Network;

/// <summary>The DHCP message types (option 53) of RFC 2132.</summary>
public enum DhcpMessageType : byte
{
    Discover = 1, Offer = 2, Request = 3, Decline = 4, Ack = 5, Nak = 6, Release = 7, Inform = 8,
}

/// <summary>
/// A BOOTP/DHCPv4 message (RFC 2131): the fixed header the server reads and writes, and the
/// options as code to value. Parse refuses anything malformed (too short, not Ethernet, no magic
/// cookie, an option running past the end, no message type), so the server drops it unanswered.
/// </summary>
public sealed class DhcpPacket
{
    public const int ServerPort = 67, ClientPort = 68;
    public const byte SubnetMask = 1, Router = 3, DnsServer = 6, HostName = 12, DomainName = 15, Broadcast = 28,
        RequestedAddress = 50, LeaseTime = 51, MessageTypeOption = 53, ServerId = 54, RenewalTime = 58, RebindingTime = 59,
        RapidCommit = 80;
    private const byte Pad = 0, End = 255, BootRequest = 1, BootReply = 2, Ethernet = 1;
    private const int HeaderLength = 236, MinimumLength = HeaderLength + 4 + 1;
    private static readonly byte[] MagicCookie = [0x63, 0x82, 0x53, 0x63];

    public bool IsReply { get; init; }
    public uint TransactionId { get; init; }
    public ushort Flags { get; init; }
    public IPAddress ClientAddress { get; init; } = IPAddress.Any;
    public IPAddress YourAddress { get; init; } = IPAddress.Any;
    public IPAddress ServerAddress { get; init; } = IPAddress.Any;
    public IPAddress RelayAddress { get; init; } = IPAddress.Any;

    /// <summary>The client's MAC, lower-case and colon-separated, as NIC configs write it.</summary>
    public string HwAddr { get; init; } = "";
    public DhcpMessageType MessageType { get; init; }

    /// <summary>The options but message type, pad and end, in the order written.</summary>
    public List<(byte Code, byte[] Value)> Options { get; init; } = [];

    /// <summary>The client asks for broadcast replies (flags' top bit).</summary>
    public bool WantsBroadcast => (Flags & 0x8000) != 0;

    public byte[]? Option(byte code) => Options.FirstOrDefault(o => o.Code == code).Value;

    public IPAddress? AddressOption(byte code) => Option(code) is { Length: 4 } v ? new IPAddress(v) : null;

    /// <summary>A client's request, or null when it is malformed or not a request from an Ethernet client.</summary>
    public static DhcpPacket? Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < MinimumLength || data[0] != BootRequest || data[1] != Ethernet || data[2] != 6) return null;
        if (!data.Slice(HeaderLength, 4).SequenceEqual(MagicCookie)) return null;
        var options = new List<(byte, byte[])>();
        DhcpMessageType? type = null;
        int i = HeaderLength + 4;
        bool ended = false;
        while (i < data.Length)
        {
            byte code = data[i++];
            if (code == Pad) continue;
            if (code == End) { ended = true; break; }
            if (i >= data.Length) return null;
            int length = data[i++];
            if (i + length > data.Length) return null;
            var value = data.Slice(i, length).ToArray();
            i += length;
            if (code == MessageTypeOption)
            {
                if (length != 1 || value[0] < 1 || value[0] > 8) return null;
                type = (DhcpMessageType)value[0];
            }
            else options.Add((code, value));
        }
        if (!ended || type is null) return null;
        return new DhcpPacket
        {
            TransactionId = BinaryPrimitives.ReadUInt32BigEndian(data[4..]),
            Flags = BinaryPrimitives.ReadUInt16BigEndian(data[10..]),
            ClientAddress = new IPAddress(data.Slice(12, 4)),
            YourAddress = new IPAddress(data.Slice(16, 4)),
            ServerAddress = new IPAddress(data.Slice(20, 4)),
            RelayAddress = new IPAddress(data.Slice(24, 4)),
            HwAddr = Convert.ToHexString(data.Slice(28, 6)).ToLowerInvariant() is var hex
                ? string.Join(':', Enumerable.Range(0, 6).Select(b => hex.Substring(b * 2, 2))) : "",
            MessageType = type.Value,
            Options = options,
        };
    }

    /// <summary>The message on the wire: header, magic cookie, message type, options, end, padded to BOOTP's 300 bytes.</summary>
    public byte[] ToBytes()
    {
        int length = HeaderLength + 4 + 3 + Options.Sum(o => 2 + o.Value.Length) + 1;
        var data = new byte[Math.Max(300, length)];
        data[0] = IsReply ? BootReply : BootRequest;
        data[1] = Ethernet;
        data[2] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), TransactionId);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(10), Flags);
        ClientAddress.GetAddressBytes().CopyTo(data, 12);
        YourAddress.GetAddressBytes().CopyTo(data, 16);
        ServerAddress.GetAddressBytes().CopyTo(data, 20);
        RelayAddress.GetAddressBytes().CopyTo(data, 24);
        Convert.FromHexString(HwAddr.Replace(":", "")).CopyTo(data, 28);
        MagicCookie.CopyTo(data, HeaderLength);
        int i = HeaderLength + 4;
        data[i++] = MessageTypeOption;
        data[i++] = 1;
        data[i++] = (byte)MessageType;
        foreach (var (code, value) in Options)
        {
            if (value.Length > 255) throw new ArgumentException($"DHCP option {code} is longer than 255 bytes");
            data[i++] = code;
            data[i++] = (byte)value.Length;
            value.CopyTo(data, i);
            i += value.Length;
        }
        data[i] = End;
        return data;
    }

    public static byte[] Address(IPAddress address) => address.GetAddressBytes();

    public static byte[] Seconds(TimeSpan span)
    {
        var v = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(v, (uint)span.TotalSeconds);
        return v;
    }

    public static byte[] Text(string text) => Encoding.ASCII.GetBytes(text);
}
