using System.Diagnostics;
using System.Formats.Tar;
using System.Text;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Builds a minimal system from the host's static busybox: busybox init as PID 1, an applet
/// link per command. The tarball is deterministic (fixed owners and times), so the same
/// busybox always yields the same fingerprint.
/// </summary>
public static class BusyboxImageBuilder
{
    private static readonly string[] Directories =
        ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "usr/share", "usr/share/udhcpc", "etc", "etc/init.d", "root", "home", "proc", "sys", "dev", "run", "tmp", "var", "var/log"];

    public static void Build(string busybox, string tarball)
    {
        if (!File.Exists(busybox))
            throw EngineException.NotFound("BusyboxNotFound", $"busybox not found at {busybox}; install the busybox-static package");
        if (IsDynamic(busybox))
            throw EngineException.Invalid("BusyboxNotStatic", $"{busybox} is dynamically linked; install the busybox-static package");
        var mtime = File.GetLastWriteTimeUtc(busybox);
        var applets = ListApplets(busybox);

        using var output = File.Create(tarball);
        using var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: false);
        void Add(TarEntryType type, string name, UnixFileMode mode, string? link = null, byte[]? data = null)
        {
            var entry = new PaxTarEntry(type, name)
            {
                Mode = mode, Uid = 0, Gid = 0, ModificationTime = mtime,
            };
            if (link is not null) entry.LinkName = link;
            if (data is not null) entry.DataStream = new MemoryStream(data);
            writer.WriteEntry(entry);
        }
        const UnixFileMode dir = (UnixFileMode)0x1ed, file = (UnixFileMode)0x1a4, exe = (UnixFileMode)0x1ed;
        foreach (var d in Directories) Add(TarEntryType.Directory, d + "/", d == "tmp" ? (UnixFileMode)0x3ff : dir);
        Add(TarEntryType.RegularFile, "bin/busybox", exe, data: File.ReadAllBytes(busybox));
        foreach (var applet in applets)
        {
            if (applet == "bin/busybox") continue;
            int depth = applet.Count(c => c == '/');
            Add(TarEntryType.SymbolicLink, applet, (UnixFileMode)0x1ff, link: string.Concat(Enumerable.Repeat("../", depth)) + "bin/busybox");
        }
        Add(TarEntryType.RegularFile, "etc/inittab", file, data: Ascii(
            "::sysinit:/etc/init.d/rcS\n::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/sync\n"));
        Add(TarEntryType.RegularFile, "etc/init.d/rcS", exe, data: Ascii(RcS));
        Add(TarEntryType.RegularFile, "usr/share/udhcpc/default.script", exe, data: Ascii(DhcpScript));
        Add(TarEntryType.RegularFile, "etc/hosts", file, data: Ascii("127.0.0.1 localhost\n::1 localhost\n"));
        Add(TarEntryType.RegularFile, "etc/passwd", file, data: Ascii("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"));
        Add(TarEntryType.RegularFile, "etc/group", file, data: Ascii("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"));
        Add(TarEntryType.RegularFile, "etc/os-release", file, data: Ascii("NAME=\"BusyBox\"\nID=busybox\nPRETTY_NAME=\"BusyBox system container\"\n"));
    }

    // Every NIC but lo asks for an address; udhcpc stays in the foreground (orphaned to init) to renew it.
    private const string RcS = """
        #!/bin/sh
        mkdir -p /run/lock /var/run
        for dev in /sys/class/net/*; do
            dev=${dev##*/}
            [ "$dev" = lo ] && continue
            udhcpc -f -S -i "$dev" -x "hostname:$(hostname)" -s /usr/share/udhcpc/default.script >/dev/null 2>&1 &
        done

        """;

    // udhcpc's hook: configure the lease (address, default route, resolver) on bound and renew.
    private const string DhcpScript = """
        #!/bin/sh
        case "$1" in
        deconfig)
            ip -4 addr flush dev "$interface"
            ip link set "$interface" up
            ;;
        bound|renew)
            if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$mask "; then
                ip -4 addr flush dev "$interface"
                ip addr add "$ip/$mask" dev "$interface"
            fi
            if [ -n "$router" ]; then
                ip route del default dev "$interface" 2>/dev/null
                for r in $router; do ip route add default via "$r" dev "$interface"; break; done
            fi
            { [ -n "$domain" ] && echo "search $domain"; for d in $dns; do echo "nameserver $d"; done; } > /etc/resolv.conf
            ;;
        esac
        exit 0

        """;

    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static List<string> ListApplets(string busybox)
    {
        var psi = new ProcessStartInfo(busybox, ["--list-full"]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var list = p.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        p.WaitForExit();
        if (p.ExitCode != 0 || list.Count == 0)
            throw new EngineException(FailureKind.Failed, "BusyboxFailed", $"cannot list applets of {busybox}: exit {p.ExitCode}");
        list.Sort(StringComparer.Ordinal);
        return list;
    }

    /// <summary>True when the ELF file has a PT_INTERP program header, i.e. needs a dynamic loader.</summary>
    internal static bool IsDynamic(string path)
    {
        using var f = File.OpenRead(path);
        using var r = new BinaryReader(f);
        if (r.ReadUInt32() != 0x464c457f) throw EngineException.Invalid("BusyboxNotElf", $"{path} is not an ELF binary");
        f.Position = 0x20;
        long phoff = r.ReadInt64();
        f.Position = 0x36;
        int phentsize = r.ReadUInt16(), phnum = r.ReadUInt16();
        for (int i = 0; i < phnum; i++)
        {
            f.Position = phoff + (long)i * phentsize;
            if (r.ReadUInt32() == 3) return true;
        }
        return false;
    }
}
