using System.Net.NetworkInformation;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Network;

/// <summary>
/// A restored container's NICs announce their MACs, as QEMU announces a moved guest: one RARP
/// broadcast from inside the container on each, so every bridge and switch on the way learns the
/// MAC's new port at once. Otherwise they learn it when the container next sends: after a live
/// move back, the first host's bridge still sends the container's frames over the link to the
/// second host, where it was, and a restored container that says nothing is not reached by its
/// peers' retransmissions until that entry ages out (300 s).
/// </summary>
internal static unsafe class MacAnnouncement
{
    private const int AF_PACKET = 17, SOCK_RAW = 3, SOCK_CLOEXEC = 0x80000;
    private const ushort ETH_P_RARP = 0x8035, ETH_P_IP = 0x0800;
    private const int FrameBytes = 60;

    /// <summary>From the network namespace of pid (the restored init), one frame on each NIC (name inside, MAC).</summary>
    public static void Send(int pid, IReadOnlyList<(string Name, PhysicalAddress Mac)> nics)
    {
        if (nics.Count == 0) return;
        NetworkNamespaceThread.Run($"/proc/{pid}/ns/net", () =>
        {
            using var netlink = new RtNetlink();
            foreach (var (name, mac) in nics)
            {
                int index = netlink.LinkIndex(name) ?? throw new NativeException(RtNetlink.ENODEV, "find link", name);
                SendOne(index, name, mac.GetAddressBytes());
            }
            return 0;
        });
    }

    private static void SendOne(int index, string name, byte[] mac)
    {
        // Protocol 0: the socket receives nothing, it only sends.
        int fd = Libc.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0) throw NativeException.FromLastError("open packet socket for", name);
        using var socket = new SafeFd(fd);
        // struct sockaddr_ll: family, protocol, ifindex, hatype, pkttype, halen, addr[8].
        byte* addr = stackalloc byte[20];
        new Span<byte>(addr, 20).Clear();
        *(ushort*)addr = AF_PACKET;
        *(int*)(addr + 4) = index;
        if (Libc.bind(fd, addr, 20) < 0) throw NativeException.FromLastError("bind packet socket to", name);
        var frame = new byte[FrameBytes];
        frame.AsSpan(0, 6).Fill(0xff);
        mac.CopyTo(frame, 6);
        Put16(frame, 12, ETH_P_RARP);
        // RARP "reverse request" for the NIC's own MAC, no addresses: hosts ignore it, switches learn from its source.
        Put16(frame, 14, 1);
        Put16(frame, 16, ETH_P_IP);
        frame[18] = 6;
        frame[19] = 4;
        Put16(frame, 20, 3);
        mac.CopyTo(frame, 22);
        mac.CopyTo(frame, 32);
        fixed (byte* p = frame)
            if (Libc.send(fd, p, frame.Length, 0) < 0) throw NativeException.FromLastError("send the MAC's announcement on", name);
    }

    private static void Put16(byte[] frame, int at, ushort value) => (frame[at], frame[at + 1]) = ((byte)(value >> 8), (byte)value);
}
