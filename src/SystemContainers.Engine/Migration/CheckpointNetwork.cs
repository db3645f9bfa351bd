using System.Globalization;
using System.Net;
using System.Text.Json;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;

namespace SystemContainers.Engine.Migration;

/// <summary>One NIC's IPv4 configuration as the container had it: its addresses (with prefix) and its gateway.</summary>
public sealed record CheckpointNic(string Name, IReadOnlyList<string> Addresses, string? Gateway);

/// <summary>
/// The NICs are the engine's, not criu's (ContainerCheckpoint), so the engine saves what they
/// carried at the dump (read from the kernel through /proc/PID/net, which shows that process's
/// namespace) and puts it on the NICs it makes in the restored namespace before the restored
/// processes run: their sockets find their addresses and routes in place.
/// </summary>
public static class CheckpointNetwork
{
    private const string FileName = "network.json";

    public static IReadOnlyList<CheckpointNic> Read(int pid, IEnumerable<string> nicNames)
    {
        var routes = File.ReadLines($"/proc/{pid}/net/route").Skip(1)
            .Select(l => l.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 8)
            .Select(f => (Iface: f[0], Destination: Hex(f[1]), Gateway: Hex(f[2]), Mask: Hex(f[7]))).ToList();
        var local = Runtime.NetnsAddresses.Read(pid).V4.Select(IPAddress.Parse).ToList();
        var result = new List<CheckpointNic>();
        foreach (string name in nicNames)
        {
            var mine = routes.Where(r => r.Iface == name).ToList();
            var addresses = new List<string>();
            foreach (var subnet in mine.Where(r => r.Gateway == 0 && r.Mask != 0))
                foreach (var address in local.Where(a => (ToUInt(a) & subnet.Mask) == subnet.Destination))
                    addresses.Add($"{address}/{PrefixLength(subnet.Mask)}");
            var gateway = mine.FirstOrDefault(r => r.Destination == 0 && r.Mask == 0 && r.Gateway != 0);
            result.Add(new CheckpointNic(name, addresses, gateway.Iface is null ? null : ToAddress(gateway.Gateway).ToString()));
        }
        return result;
    }

    public static void Save(string imagesDir, IReadOnlyList<CheckpointNic> nics) =>
        File.WriteAllText(Path.Combine(imagesDir, FileName), JsonSerializer.Serialize(nics));

    public static IReadOnlyList<CheckpointNic> Load(string imagesDir)
    {
        string path = Path.Combine(imagesDir, FileName);
        return File.Exists(path) ? JsonSerializer.Deserialize<List<CheckpointNic>>(File.ReadAllText(path)) ?? [] : [];
    }

    /// <summary>Brings the NICs up in the network namespace of pid with their saved addresses and default routes.</summary>
    public static void Apply(int pid, IReadOnlyList<CheckpointNic> nics)
    {
        if (nics.Count == 0) return;
        using var inside = RtNetlink.OpenIn($"/proc/{pid}/ns/net");
        foreach (var nic in nics)
        {
            int index = inside.LinkIndex(nic.Name) ?? throw new NativeException(RtNetlink.ENODEV, "find link", nic.Name);
            inside.SetUp(nic.Name);
            foreach (string address in nic.Addresses)
            {
                var (ip, prefix) = Parse(address);
                inside.AddAddress(index, ip, prefix, nic.Name);
            }
            if (nic.Gateway is not null) inside.AddRoute(index, IPAddress.Any, 0, IPAddress.Parse(nic.Gateway), nic.Name);
        }
    }

    private static (IPAddress Address, int Prefix) Parse(string cidr)
    {
        int slash = cidr.IndexOf('/');
        return (IPAddress.Parse(cidr[..slash]), int.Parse(cidr[(slash + 1)..], CultureInfo.InvariantCulture));
    }

    /// <summary>/proc/net/route's addresses are the kernel's network-order words printed in host (little-endian) order.</summary>
    private static uint Hex(string field) => uint.Parse(field, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static uint ToUInt(IPAddress a) => BitConverter.ToUInt32(a.GetAddressBytes());

    private static IPAddress ToAddress(uint value) => new(BitConverter.GetBytes(value));

    private static int PrefixLength(uint mask) => System.Numerics.BitOperations.PopCount(mask);
}
