using System.Globalization;
using System.Net;
using System.Text;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Network;

/// <summary>A DHCP lease as the network's DHCP server recorded it, or a static one from a container's config.</summary>
public sealed record NetworkLease(string Hostname, string HwAddr, string Address, string Type, DateTimeOffset? Expires);

/// <summary>
/// The dnsmasq of one bridge: DNS for &lt;container&gt;.&lt;domain&gt;, and router advertisements
/// and stateless DHCPv6 where the network has IPv6 (DHCPv4 is the engine's DhcpServer). The daemon
/// starts it, restarts it when it dies, and leaves it running across its own restart (a new daemon
/// adopts it by pid and start time), as it does containers. Each NIC's names are a hosts file of
/// their own in a hosts directory: dnsmasq reads a new or changed file by inotify and forgets a
/// deleted one the same way, touching only that file's names, since it serves no DHCP leases.
/// </summary>
public sealed class Dnsmasq : IDisposable
{
    // dnsmasq lists the hosts directory as nobody.
    private const UnixFileMode Traversable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
    private static readonly TimeSpan StartupCheck = TimeSpan.FromMilliseconds(150);
    private readonly SupervisedProcess _process;

    public Dnsmasq(string path, string bridge, string stateDir, string runDir, EventLoop loop)
    {
        Bridge = bridge;
        LeasesFile = Path.Combine(stateDir, "dnsmasq.leases");
        HostsDir = Path.Combine(runDir, "hosts");
        LegacyHostsFile = Path.Combine(runDir, "dnsmasq.hosts");
        LegacyDhcpHostsDir = Path.Combine(runDir, "dhcp-hosts");
        LogFile = Path.Combine(runDir, "dnsmasq.log");
        _process = new SupervisedProcess($"dnsmasq of {bridge}", path, Path.Combine(runDir, "dnsmasq.pid"), loop)
        {
            FailureReason = "DnsmasqFailed",
            RestartHint = $"; see {LogFile}",
        };
    }

    public string Bridge { get; }
    public string LeasesFile { get; }
    public string HostsDir { get; }

    /// <summary>The single hosts file of daemons before the hosts directory, removed when found.</summary>
    public string LegacyHostsFile { get; }

    /// <summary>The static leases of daemons whose dnsmasq served DHCPv4, removed when found.</summary>
    public string LegacyDhcpHostsDir { get; }
    public string PidFile => _process.PidFile;
    public string LogFile { get; }
    public int? Pid => _process.Pid;

    /// <summary>The command line for a network's config; dnsmasq reads no config file of the host.</summary>
    public IReadOnlyList<string> Arguments(NetworkConfig config)
    {
        var a = new List<string>
        {
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-hosts", "--strict-order", "--bind-interfaces",
            "--except-interface=lo", "--pid-file=", "--no-ping", $"--interface={Bridge}",
            "--no-negcache", "--domain-needed", "--quiet-ra", "--quiet-dhcp6",
            $"--listen-address={config.IPv4.Address}", $"--dhcp-leasefile={LeasesFile}", $"--hostsdir={HostsDir}",
            $"--domain={config.Domain}", $"--local=/{config.Domain}/", $"--interface-name=_gateway.{config.Domain},{Bridge}",
            "--user=nobody", "--group=nogroup", $"--log-facility={LogFile}",
        };
        if (config.IPv6 is { } v6)
        {
            // No ra-names: it derived AAAA names from dnsmasq's own DHCPv4 leases; the hosts files carry them now.
            a.Add($"--listen-address={v6.Address}");
            a.Add("--enable-ra");
            a.Add($"--dhcp-range=::,constructor:{Bridge},ra-stateless");
        }
        return a;
    }

    /// <summary>
    /// Starts dnsmasq, or adopts the one a previous daemon left running with the same command line.
    /// A bad address or a port in use makes dnsmasq quit at once: that is an error, not a restart loop.
    /// </summary>
    public void Start(NetworkConfig config)
    {
        Directory.CreateDirectory(HostsDir, Traversable);
        // An older daemon's static leases: the hosts directory and the DhcpServer, fed from the configs, replace them.
        File.Delete(LegacyHostsFile);
        if (Directory.Exists(LegacyDhcpHostsDir)) Directory.Delete(LegacyDhcpHostsDir, recursive: true);
        _process.Start(Arguments(config), StartupCheck, () => SupervisedProcess.LastLine(LogFile));
    }

    /// <summary>Applies a changed config: dnsmasq cannot re-read its command line, so it is restarted.</summary>
    public void Restart(NetworkConfig config)
    {
        Stop();
        Start(config);
    }

    /// <summary>
    /// Writes one NIC's names: its address, and on a dual-stack network the SLAAC address its MAC
    /// makes. dnsmasq reads the file after dropping privileges to nobody; derived from the configs,
    /// it needs no fsync. The temporary file's name starts with a dot, which dnsmasq's inotify
    /// skips, so it reads only the renamed, complete file.
    /// </summary>
    public void WriteHost(string mac, IPAddress address, string name, NetworkConfig config)
    {
        string names = $"{name} {name}.{config.Domain}";
        string text = $"{address} {names}\n" + (config.IPv6 is { } v6 ? $"{v6.Eui64(mac)} {names}\n" : "");
        Sys.WriteFileAtomic(HostFile(mac), Encoding.ASCII.GetBytes(text), 0x1a4, durable: false);
    }

    /// <summary>Deletes one NIC's file; dnsmasq forgets its names by inotify.</summary>
    public void RemoveHost(string mac) => File.Delete(HostFile(mac));

    /// <summary>The hosts directory as it is (made if missing): MAC to IPv4 address and name; a file this class did not write is deleted.</summary>
    public Dictionary<string, (IPAddress Address, string Name)> ReadHosts()
    {
        var hosts = new Dictionary<string, (IPAddress, string)>(StringComparer.Ordinal);
        Directory.CreateDirectory(HostsDir, Traversable);
        foreach (var file in Directory.EnumerateFiles(HostsDir))
        {
            var f = File.ReadLines(file).FirstOrDefault()?.Split(' ') ?? [];
            string mac = string.Join(':', Path.GetFileName(file).Chunk(2).Select(c => new string(c)));
            if (f.Length == 3 && mac.Length == 17 && HostFile(mac) == file && IpSubnet.TryParseAddress(f[0], v6: false, out var address)
                && f[2].StartsWith(f[1] + ".", StringComparison.Ordinal))
                hosts[mac] = (address, f[1]);
            else
                File.Delete(file);
        }
        return hosts;
    }

    private string HostFile(string mac) => Path.Combine(HostsDir, mac.Replace(":", ""));

    /// <summary>
    /// The dynamic leases in dnsmasq's lease file (IPv4 lines carry a MAC; IPv6 lines an IAID):
    /// an older daemon's dnsmasq served DHCPv4, and its leases keep their addresses after an upgrade.
    /// </summary>
    public IReadOnlyList<NetworkLease> ReadLeases()
    {
        var leases = new List<NetworkLease>();
        if (!File.Exists(LeasesFile)) return leases;
        foreach (var line in File.ReadAllLines(LeasesFile))
        {
            var f = line.Split(' ');
            if (f.Length < 5 || f[0] == "duid" || !long.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out long expiry)) continue;
            if (!IPAddress.TryParse(f[2], out var address)) continue;
            bool v4 = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork;
            leases.Add(new NetworkLease(f[3] == "*" ? "" : f[3], v4 ? f[1] : "", address.ToString(), "dynamic",
                expiry == 0 ? null : DateTimeOffset.FromUnixTimeSeconds(expiry)));
        }
        return leases;
    }

    /// <summary>Ends (SIGKILL, then waits) every dnsmasq whose lease file is under stateRoot, but the owned ones.</summary>
    public static void EndUnowned(string stateRoot, IReadOnlySet<int> owned)
    {
        string marker = "--dhcp-leasefile=" + stateRoot + "/";
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || owned.Contains(pid)) continue;
            string[] cmdline;
            try { cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0'); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            if (cmdline.Length == 0 || Path.GetFileName(cmdline[0]) != "dnsmasq" || !cmdline.Any(a => a.StartsWith(marker, StringComparison.Ordinal))) continue;
            try
            {
                using var pidfd = Sys.PidfdOpen(pid);
                EngineLog.Write($"ending dnsmasq {pid}, which no network owns");
                Sys.PidfdSignal(pidfd, 9);
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
                while (ProcStat.StartTime(pid) is not null && File.ReadAllText(Path.Combine(dir, "cmdline")).Length > 0 && DateTime.UtcNow < deadline)
                    Thread.Sleep(10);
            }
            catch (Exception e) when (e is NativeException or IOException) { }
        }
    }

    /// <summary>The live process the pid file names (pid and start time both match), adopted or not.</summary>
    public int? RecordedPid() => _process.RecordedPid();

    /// <summary>Ends dnsmasq (SIGTERM, then SIGKILL) and waits until it has exited.</summary>
    public void Stop() => _process.Stop();

    /// <summary>Daemon shutdown: dnsmasq keeps serving the running containers; the next daemon adopts it.</summary>
    public void Dispose() => _process.Dispose();
}
