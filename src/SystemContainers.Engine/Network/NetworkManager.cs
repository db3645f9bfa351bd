using System.Globalization;
using System.Net;
using System.Net.NetworkInformation;
using System.Security.Cryptography;
using System.Text.Json;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Network;

/// <summary>The host end of a container's veth pair: its name, and its index, which no later link shares.</summary>
public sealed record HostInterface(string Name, int Index);

/// <summary>A managed network as listed and shown.</summary>
public sealed record NetworkView(
    string Name, IReadOnlyDictionary<string, string> Config, string IPv4, string? IPv6, bool Nat, string Domain,
    IReadOnlyList<string> UsedBy, int? DnsmasqPid, DateTimeOffset Created);

/// <summary>
/// Managed bridge networks: the bridge and its addresses (rtnetlink), a DHCPv4 server and one
/// supervised dnsmasq (DNS, IPv6 router advertisements) each, and the daemon's nftables table.
/// It also knows every container's bridged NICs, so it can refuse a removal in use, give each
/// NIC a unique address, and give the DHCP server and dnsmasq each container's address and
/// name. Containers' veth pairs are made here, while their init waits.
/// </summary>
public sealed class NetworkManager : IDisposable
{
    // dnsmasq re-reads its hosts file after dropping privileges to nobody.
    private const UnixFileMode Traversable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly EngineOptions _options;
    private readonly EventLoop _loop;
    private readonly RtNetlink _netlink = new();
    // Deleting a veth waits for the kernel (tens of ms): it runs in the background, on a socket of its own.
    private readonly RtNetlink _deleter = new();
    private readonly Dictionary<string, Task> _detaching = new(StringComparer.Ordinal);
    private readonly NftablesFirewall _firewall;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Managed> _networks = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IReadOnlyList<NicSpec>> _nics = new(StringComparer.Ordinal);

    private sealed class Managed(NetworkRecord record, NetworkConfig config, Dnsmasq dnsmasq, DhcpServer dhcp)
    {
        public NetworkRecord Record = record;
        public NetworkConfig Config = config;
        public Dnsmasq Dnsmasq { get; } = dnsmasq;
        public DhcpServer Dhcp { get; } = dhcp;

        /// <summary>What the DHCP server and the hosts directory hold: each NIC's MAC to its address and container.</summary>
        public readonly Dictionary<string, (IPAddress Address, string Container)> Hosts = new(StringComparer.Ordinal);
        public readonly HashSet<IPAddress> Assigned = [];
        public IPAddress? LastAssigned;

        public void SetHost(string mac, IPAddress address, string container)
        {
            DropHost(mac);
            Hosts[mac] = (address, container);
            Assigned.Add(address);
        }

        public void DropHost(string mac)
        {
            if (Hosts.Remove(mac, out var old)) Assigned.Remove(old.Address);
        }
    }

    /// <summary>One NIC's static lease as planned: its network, MAC, address and container.</summary>
    private sealed record Assignment(Managed Network, string Mac, IPAddress Address, string Container);

    public NetworkManager(EngineOptions options, EventLoop loop)
    {
        _options = options;
        _loop = loop;
        _firewall = new NftablesFirewall(options.NftPath, options.NftTable);
        Directory.CreateDirectory(StateRoot);
        Directory.CreateDirectory(RunRoot, Traversable);
        Recovery.ReclaimTempFiles(StateRoot);
        Recovery.ReclaimTempFiles(RunRoot);
        bool rolledBack = false;
        foreach (var dir in Directory.GetDirectories(StateRoot).Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(dir);
            string file = Path.Combine(dir, "network.json");
            NetworkRecord record;
            NetworkConfig config;
            try
            {
                // Without its record the directory is what a create that died before its intent left.
                if (!File.Exists(file)) { RemoveFiles(name); continue; }
                record = StateStore.Read<NetworkRecord>(file, NetworkRecord.CurrentSchema, r => r.SchemaVersion, Json);
                if (record.Pending)
                {
                    RollBack(name);
                    rolledBack = true;
                    continue;
                }
                // A record edited by hand, or written by a laxer version, is reported, never a failed start.
                config = NetworkConfig.Parse(record.Config);
            }
            catch (Exception e) when (e is NativeException or IOException or EngineException)
            {
                EngineLog.Write($"network '{name}' is not loaded: {e.Message}");
                continue;
            }
            var managed = NewManaged(record, config);
            _networks[record.Name] = managed;
            try
            {
                SetUpBridge(record.Name, config, existing: true);
            }
            catch (Exception e) when (e is NativeException or IOException or EngineException)
            {
                EngineLog.Write($"network '{record.Name}' is not set up: {e.Message}");
            }
        }
        if (options.DefaultNetwork is { } fallback && !_networks.ContainsKey(fallback))
            rolledBack |= TryRemoveUnrecordedBridge(fallback);
        // The table is rebuilt from the records: rules of a network cut short go with it.
        if (_networks.Count > 0 || rolledBack) TryApplyFirewall();
    }

    /// <summary>
    /// Removes a bridge of this name that no record names but that carries the MAC this daemon
    /// gives its bridges: one a daemon made and lost (an older state directory, a crash before
    /// records had intents). False when the link is someone else's.
    /// </summary>
    private bool RemoveUnrecordedBridge(string name)
    {
        if (_networks.ContainsKey(name) || _netlink.LinkAddress(name) is not { } mac || !mac.Equals(BridgeMac(name))) return false;
        EngineLog.Write($"removing bridge {name}, which this daemon made and no longer records");
        _netlink.DeleteLink(name);
        return true;
    }

    private bool TryRemoveUnrecordedBridge(string name)
    {
        try { return RemoveUnrecordedBridge(name); }
        catch (NativeException e)
        {
            EngineLog.Write($"cannot check link {name}: {e.Message}");
            return false;
        }
    }

    /// <summary>
    /// A network whose create or removal was cut short: its bridge (made by this daemon, since a
    /// create first checks that no interface has the name) and its files go; its dnsmasq is
    /// ended by StartServices with every other one no network owns.
    /// </summary>
    private void RollBack(string name)
    {
        EngineLog.Write($"network '{name}' was cut short while being created or removed; removing what exists of it");
        if (_netlink.LinkIndex(name) is not null) _netlink.DeleteLink(name);
        RemoveFiles(name);
    }

    private void RemoveFiles(string name)
    {
        TreeRemover.Remove(Path.Combine(StateRoot, name));
        TreeRemover.Remove(Path.Combine(RunRoot, name));
    }

    private string StateRoot => Path.Combine(_options.StateDir, "networks");
    private string RunRoot => Path.Combine(_options.RunDir, "networks");

    private Managed NewManaged(NetworkRecord record, NetworkConfig config)
    {
        string name = record.Name, run = Path.Combine(RunRoot, name), state = Path.Combine(StateRoot, name);
        Directory.CreateDirectory(run, Traversable);
        return new Managed(record, config, new Dnsmasq(_options.DnsmasqPath, name, state, run, _loop), new DhcpServer(name, state, config));
    }

    /// <summary>
    /// After the containers were registered at daemon start: addresses planned, dnsmasq started or
    /// adopted, then the DHCP server started (an older daemon's dnsmasq that served DHCP is gone by then).
    /// </summary>
    public void StartServices()
    {
        lock (_lock)
        {
            // Any other dnsmasq of this state directory belongs to a network cut short, or was started just before a crash kept it from being recorded.
            Dnsmasq.EndUnowned(StateRoot, _networks.Values.Select(m => m.Dnsmasq.RecordedPid()).OfType<int>().ToHashSet());
            foreach (var (name, m) in _networks)
            {
                try
                {
                    LoadHosts(m);
                    m.Dnsmasq.Start(m.Config);
                    m.Dhcp.Start();
                }
                catch (Exception e) when (e is NativeException or IOException or EngineException)
                {
                    EngineLog.Write($"DHCP or dnsmasq of network '{name}' is not running: {e.Message}");
                }
            }
        }
    }

    public IReadOnlyList<NetworkView> List()
    {
        lock (_lock) return _networks.Keys.Order(StringComparer.Ordinal).Select(n => View(_networks[n])).ToList();
    }

    public NetworkView Get(string name)
    {
        lock (_lock) return View(Find(name));
    }

    /// <summary>Creates a network: bridge, addresses, dnsmasq, DHCP server and firewall rules, or nothing if any step fails.</summary>
    public NetworkView Create(string name, IReadOnlyDictionary<string, string>? config)
    {
        NetworkConfig.ValidateName(name);
        lock (_lock)
        {
            var values = new Dictionary<string, string>(config ?? new Dictionary<string, string>(), StringComparer.Ordinal);
            // Like LXD's "auto": without an address the network gets a free private /20, room for 4,093 containers.
            if (!values.ContainsKey(NetworkConfig.IPv4Address)) values[NetworkConfig.IPv4Address] = FreeSubnet();
            var parsed = NetworkConfig.Parse(values);
            if (_networks.ContainsKey(name)) throw EngineException.Conflict("NetworkExists", $"network '{name}' already exists");
            CheckOverlaps(name, parsed);
            if (_netlink.LinkIndex(name) is not null && !RemoveUnrecordedBridge(name))
                throw EngineException.Conflict("InterfaceExists", $"an interface named '{name}' already exists on this host; choose another network name");
            Managed? managed = null;
            bool intended = false;
            try
            {
                Directory.CreateDirectory(Path.Combine(StateRoot, name));
                var record = new NetworkRecord(name, parsed.Raw, DateTimeOffset.UtcNow, Pending: true);
                WriteRecord(record);
                intended = true;
                TestHooks.Reach("network-intent");
                SetUpBridge(name, parsed, existing: false);
                TestHooks.Reach("network-bridged");
                managed = NewManaged(record, parsed);
                _networks[name] = managed;
                managed.Dnsmasq.Start(parsed);
                managed.Dhcp.Start();
                TestHooks.Reach("network-dnsmasq");
                ApplyFirewall();
                TestHooks.Reach("network-firewall");
                managed.Record = record with { Pending = false };
                WriteRecord(managed.Record);
                return View(managed);
            }
            catch (Exception e)
            {
                _networks.Remove(name);
                managed?.Dhcp.Stop();
                managed?.Dnsmasq.Stop();
                if (intended) _netlink.DeleteLink(name);
                RemoveFiles(name);
                if (managed is not null) TryApplyFirewall();
                if (e is EngineException) throw;
                throw new EngineException(FailureKind.Failed, "NetworkCreateFailed", $"cannot create network '{name}': {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Changes config keys (null or empty removes one). Checked first: the result must parse,
    /// not overlap another network, and keep every container's fixed address inside it.
    /// </summary>
    public NetworkView Update(string name, IReadOnlyDictionary<string, string?> changes)
    {
        lock (_lock)
        {
            var m = Find(name);
            var merged = new Dictionary<string, string>(m.Record.Config, StringComparer.Ordinal);
            foreach (var (key, value) in changes)
            {
                if (string.IsNullOrEmpty(value)) merged.Remove(key);
                else merged[key] = value;
            }
            var parsed = NetworkConfig.Parse(merged);
            CheckOverlaps(name, parsed);
            foreach (var (container, nic) in NicsOn(name))
                if (nic.IPv4 is { } fixedAddress && !parsed.IPv4.IsLeasable(fixedAddress))
                    throw EngineException.Conflict("AddressOutsideNetwork",
                        $"container '{container}' has the fixed address {fixedAddress} ({NicSpec.Key(nic.Device, "ipv4.address")}), which {parsed.IPv4} does not leave to containers");
            int nics = NicsOn(name).Count(u => u.Nic.HwAddr is not null);
            if (parsed.IPv4.ContainerAddresses < nics)
                throw EngineException.Conflict("NetworkFull", $"{parsed.IPv4} leaves {parsed.IPv4.ContainerAddresses} container addresses, and network '{name}' has {nics} NICs");
            var old = m.Config;
            try
            {
                Reconfigure(m, old, parsed);
            }
            catch (Exception e) when (e is NativeException or IOException or EngineException)
            {
                try { Reconfigure(m, parsed, old); }
                catch (Exception again) when (again is NativeException or IOException or EngineException)
                {
                    EngineLog.Write($"cannot restore network '{name}': {again.Message}");
                }
                throw new EngineException(FailureKind.Failed, "NetworkUpdateFailed", $"cannot update network '{name}': {e.Message}", e);
            }
            m.Record = m.Record with { Config = parsed.Raw };
            WriteRecord(m.Record);
            return View(m);
        }
    }

    private void Reconfigure(Managed m, NetworkConfig from, NetworkConfig to)
    {
        string name = m.Record.Name;
        int index = _netlink.LinkIndex(name) ?? throw new NativeException(RtNetlink.ENODEV, "find bridge", name);
        if (from.IPv4 != to.IPv4)
        {
            _netlink.AddAddress(index, to.IPv4.Address, to.IPv4.PrefixLength, name);
            _netlink.DeleteAddress(index, from.IPv4.Address, from.IPv4.PrefixLength, name);
        }
        if (from.IPv6 != to.IPv6)
        {
            if (from.IPv6 is { } o) _netlink.DeleteAddress(index, o.Address, o.PrefixLength, name);
            SetSysctls(name, to);
            if (to.IPv6 is { } n) _netlink.AddAddress(index, n.Address, n.PrefixLength, name);
        }
        SetSysctls(name, to);
        m.Config = to;
        m.Dhcp.Configure(to);
        if (from.IPv4 != to.IPv4) Readdress(m);
        // A new domain or IPv6 prefix changes every NIC's names.
        else if (from.Domain != to.Domain || from.IPv6 != to.IPv6)
            foreach (var (mac, (address, container)) in m.Hosts) m.Dnsmasq.WriteHost(mac, address, container, to);
        m.Dnsmasq.Restart(to);
        ApplyFirewall();
    }

    /// <summary>A new subnet: every NIC on the network gets its address in it (fixed ones stay), all or none.</summary>
    private void Readdress(Managed m)
    {
        var plan = Plan(NicsOn(m.Record.Name), preferred: null);
        foreach (var mac in m.Hosts.Keys.ToList()) m.DropHost(mac);
        m.LastAssigned = null;
        foreach (var assignment in plan) WriteHost(assignment);
    }

    /// <summary>Removes a network no container uses: firewall rules first, then dnsmasq, the bridge and its files.</summary>
    public void Delete(string name)
    {
        lock (_lock)
        {
            var m = Find(name);
            var users = NicsOn(name).Select(u => u.Container).Distinct().Order(StringComparer.Ordinal).ToList();
            if (users.Count > 0)
                throw EngineException.Conflict("NetworkInUse", $"network '{name}' is used by {string.Join(", ", users)}; remove their NICs or the containers first");
            // From here a daemon that dies finishes the removal when it starts again.
            WriteRecord(m.Record with { Pending = true });
            _networks.Remove(name);
            try
            {
                ApplyFirewall();
            }
            catch
            {
                _networks[name] = m;
                WriteRecord(m.Record);
                throw;
            }
            TestHooks.Reach("network-remove-unfirewalled");
            m.Dhcp.Stop();
            m.Dnsmasq.Stop();
            _netlink.DeleteLink(name);
            RemoveFiles(name);
        }
    }

    /// <summary>The default network, made on first use with a free private /20 and NAT, as LXD makes lxdbr0.</summary>
    public string EnsureDefault()
    {
        string name = _options.DefaultNetwork ?? throw EngineException.Invalid("NoDefaultNetwork", "this daemon has no default network; name one in the NIC's network key");
        lock (_lock)
        {
            if (!_networks.ContainsKey(name)) Create(name, new Dictionary<string, string> { [NetworkConfig.IPv4Nat] = "true" });
            return name;
        }
    }

    /// <summary>A random 10.x.y.1/20 that overlaps neither a managed network nor a route of the host.</summary>
    private string FreeSubnet()
    {
        const int Prefix = 20;
        var taken = HostRoutes().Concat(_networks.Values.Select(n => n.Config.IPv4)).ToList();
        for (int attempt = 0; attempt < 1000; attempt++)
        {
            byte third = (byte)(RandomNumberGenerator.GetInt32(1 << (Prefix - 16)) << (24 - Prefix));
            var candidate = new IpSubnet(new IPAddress([10, (byte)RandomNumberGenerator.GetInt32(256), third, 1]), Prefix);
            if (!taken.Any(t => t.Overlaps(candidate))) return candidate.ToString();
        }
        throw new EngineException(FailureKind.Failed, "NoFreeSubnet", $"cannot find a free 10.x.y.0/{Prefix}; give the network an ipv4.address");
    }

    /// <summary>Checks a container's bridged NICs against the networks and the other containers' NICs.</summary>
    private void Validate(string container, IReadOnlyList<NicSpec> nics)
    {
        {
            foreach (var nic in nics.Where(n => n.Type == NicType.Bridged))
            {
                string network = nic.Network ?? throw EngineException.Invalid("MissingNetwork", $"{NicSpec.Key(nic.Device, "network")} is required");
                if (!_networks.TryGetValue(network, out var m))
                    throw EngineException.NotFound("NetworkNotFound", $"network '{network}' named by {NicSpec.Key(nic.Device, "network")} not found");
                var others = _nics.Where(kv => kv.Key != container).SelectMany(kv => kv.Value.Select(n => (Container: kv.Key, Nic: n))).ToList();
                if (nic.IPv4 is { } address)
                {
                    if (!m.Config.IPv4.IsLeasable(address))
                        throw EngineException.Invalid("AddressOutsideNetwork",
                            $"{NicSpec.Key(nic.Device, "ipv4.address")} {address} is not a container address of network '{network}' ({m.Config.IPv4})");
                    var clash = others.FirstOrDefault(o => o.Nic.Network == network && address.Equals(o.Nic.IPv4));
                    if (clash.Container is not null)
                        throw EngineException.Conflict("AddressInUse", $"address {address} on network '{network}' is already fixed for container '{clash.Container}'");
                }
                if (nic.HwAddr is { } mac && others.FirstOrDefault(o => mac.Equals(o.Nic.HwAddr)) is { Container: not null } dup)
                    throw EngineException.Conflict("HwAddrInUse", $"MAC address {nic.HwAddrText} is already used by container '{dup.Container}'");
                string host = nic.HostNameFor(container);
                if (_networks.ContainsKey(host))
                    throw EngineException.Conflict("HostNameInUse", $"host interface name '{host}' ({NicSpec.Key(nic.Device, "host_name")}) is the bridge of network '{host}'");
                if (others.FirstOrDefault(o => o.Nic.HostNameFor(o.Container) == host) is { Container: not null } sameHost)
                    throw EngineException.Conflict("HostNameInUse", $"host interface name '{host}' is already used by container '{sameHost.Container}'");
                // A link the container's NIC does not already own is the host's: never take it over.
                bool registered = _nics.GetValueOrDefault(container)?.Any(n => n.HostNameFor(container) == host) == true;
                if (nic.HostName is not null && !registered && _netlink.LinkIndex(host) is not null)
                    throw EngineException.Conflict("HostNameInUse",
                        $"host interface name '{host}' ({NicSpec.Key(nic.Device, "host_name")}) names an existing host interface");
            }
        }
    }

    /// <summary>
    /// Checks a container's NICs, gives each its address and records them in one step, so two
    /// containers never get the same address; a network with no free address is an error and
    /// changes nothing. The DHCP server answers the NIC's MAC with its address from then on.
    /// </summary>
    public void Register(string container, IReadOnlyList<NicSpec> nics)
    {
        lock (_lock)
        {
            Validate(container, nics);
            var bridged = nics.Where(n => n.Type == NicType.Bridged).ToList();
            var plan = Plan(bridged.Select(n => (container, n)), preferred: null);
            var old = _nics.GetValueOrDefault(container) ?? [];
            Restore(container, nics);
            foreach (var nic in old)
                if (nic.HwAddrText is { } mac && _networks.TryGetValue(nic.Network!, out var m) && !plan.Any(a => a.Network == m && a.Mac == mac))
                    RemoveHost(m, mac);
            foreach (var assignment in plan) WriteHost(assignment);
        }
    }

    /// <summary>Records a stored container's NICs at daemon start, as they are (StartServices gives them their addresses).</summary>
    public void Restore(string container, IReadOnlyList<NicSpec> nics)
    {
        lock (_lock)
        {
            var bridged = nics.Where(n => n.Type == NicType.Bridged).ToList();
            if (bridged.Count == 0) _nics.Remove(container);
            else _nics[container] = bridged;
        }
    }

    /// <summary>
    /// A renamed container's NICs: they keep their MACs and addresses, and their host entries
    /// (keyed by MAC) name the container's new name, which becomes the DHCP host name. The new
    /// name's host interface names are checked like a new container's.
    /// </summary>
    public void Rename(string from, string to)
    {
        lock (_lock)
        {
            if (!_nics.Remove(from, out var nics)) return;
            _nics[to] = nics;
            try
            {
                Validate(to, nics);
            }
            catch
            {
                _nics.Remove(to);
                _nics[from] = nics;
                throw;
            }
            foreach (var nic in nics)
                if (nic.HwAddrText is { } mac && _networks.TryGetValue(nic.Network!, out var m) && m.Hosts.TryGetValue(mac, out var current) && current.Container == from)
                    WriteHost(new Assignment(m, mac, current.Address, to));
        }
    }

    /// <summary>A removed container's NICs: their addresses and names go, and their leases end now.</summary>
    public void Unregister(string container) => Register(container, []);

    /// <summary>
    /// The addresses of these NICs: a fixed ipv4.address as it is, then the one a NIC already
    /// has, then the preferred one (its lease, at daemon start), then the next free one.
    /// </summary>
    private List<Assignment> Plan(IEnumerable<(string Container, NicSpec Nic)> nics, Func<Managed, string, IPAddress?>? preferred)
    {
        var plan = new List<Assignment>();
        var planned = new HashSet<IPAddress>();
        var pending = new List<(string Container, NicSpec Nic, Managed Network, string Mac)>();
        foreach (var (container, nic) in nics.OrderBy(u => u.Nic.IPv4 is null))
        {
            if (nic.HwAddrText is not { } mac || !_networks.TryGetValue(nic.Network!, out var m)) continue;
            var current = m.Hosts.GetValueOrDefault(mac);
            if (nic.IPv4 is { } fixedAddress)
            {
                if (m.Assigned.Contains(fixedAddress) && !(current.Container == container && fixedAddress.Equals(current.Address)))
                {
                    string holder = m.Hosts.First(h => h.Value.Address.Equals(fixedAddress)).Value.Container;
                    throw EngineException.Conflict("AddressInUse", $"address {fixedAddress} on network '{nic.Network}' is already assigned to container '{holder}'");
                }
                Add(new Assignment(m, mac, fixedAddress, container));
            }
            else if (current.Container == container && m.Config.IPv4.IsLeasable(current.Address) && !planned.Contains(current.Address))
                Add(new Assignment(m, mac, current.Address, container));
            else
                pending.Add((container, nic, m, mac));
        }
        foreach (var (container, nic, m, mac) in pending)
        {
            bool Free(IPAddress a) => !m.Assigned.Contains(a) && !planned.Contains(a);
            var address = preferred?.Invoke(m, mac) is { } p && m.Config.IPv4.IsLeasable(p) && Free(p) ? p
                : m.Config.IPv4.NextFree(m.LastAssigned, a => !Free(a));
            if (address is null) throw NetworkFull(m, container, nic);
            Add(new Assignment(m, mac, address, container));
            m.LastAssigned = address;
        }
        return plan;

        void Add(Assignment a)
        {
            plan.Add(a);
            planned.Add(a.Address);
        }
    }

    private static EngineException NetworkFull(Managed m, string container, NicSpec nic)
    {
        var subnet = m.Config.IPv4;
        string larger = $"{subnet.Address}/{Math.Max(8, subnet.PrefixLength - 4)}";
        return EngineException.Conflict("NetworkFull",
            $"network '{m.Record.Name}' has no free address for container '{container}' ({NicSpec.Key(nic.Device, "network")}): all {subnet.ContainerAddresses} container addresses of {subnet.NetworkCidr} are assigned; "
            + $"make it larger (Set-SystemContainerNetwork {m.Record.Name} -IPv4 {larger}) or remove containers from it");
    }

    /// <summary>The hosts files are derived from the configs: a failure to write one is logged, and the next daemon start writes it again.</summary>
    private void WriteHost(Assignment a)
    {
        var m = a.Network;
        if (m.Hosts.TryGetValue(a.Mac, out var current) && current.Address.Equals(a.Address) && current.Container == a.Container) return;
        m.SetHost(a.Mac, a.Address, a.Container);
        m.Dhcp.SetHost(a.Mac, a.Address, a.Container);
        try { m.Dnsmasq.WriteHost(a.Mac, a.Address, a.Container, m.Config); }
        catch (Exception e) when (e is IOException or NativeException)
        {
            EngineLog.Write($"cannot write the names of {a.Mac} on network '{m.Record.Name}': {e.Message}");
        }
    }

    private void RemoveHost(Managed m, string mac)
    {
        if (!m.Hosts.ContainsKey(mac)) return;
        m.DropHost(mac);
        m.Dhcp.RemoveHost(mac);
        try { m.Dnsmasq.RemoveHost(mac); }
        catch (Exception e) when (e is IOException or NativeException)
        {
            EngineLog.Write($"cannot remove the names of {mac} on network '{m.Record.Name}': {e.Message}");
        }
    }

    /// <summary>
    /// At daemon start: the hosts directory keeps the files of registered NICs that still fit,
    /// the others go, and every NIC without one gets an address (its lease's if free, so
    /// addresses outlast a reboot and an older daemon's dnsmasq leases); leases of MACs no NIC
    /// has any more end.
    /// </summary>
    private void LoadHosts(Managed m)
    {
        string name = m.Record.Name;
        var users = NicsOn(name);
        var owners = users.Where(u => u.Nic.HwAddrText is not null).ToDictionary(u => u.Nic.HwAddrText!, u => u, StringComparer.Ordinal);
        foreach (var (mac, (address, host)) in m.Dnsmasq.ReadHosts())
        {
            if (owners.TryGetValue(mac, out var owner) && owner.Container == host && m.Config.IPv4.IsLeasable(address)
                && (owner.Nic.IPv4 is null || owner.Nic.IPv4.Equals(address)) && !m.Assigned.Contains(address))
            {
                m.SetHost(mac, address, host);
                m.Dhcp.SetHost(mac, address, host);
            }
            else
                m.Dnsmasq.RemoveHost(mac);
        }
        var leases = m.Dnsmasq.ReadLeases().Concat(m.Dhcp.Leases()).Where(l => l.HwAddr.Length > 0).GroupBy(l => l.HwAddr)
            .ToDictionary(g => g.Key, g => IPAddress.Parse(g.Last().Address), StringComparer.Ordinal);
        // One NIC at a time, fixed addresses first: a NIC with no free address is refused at its start, not the rest with it.
        foreach (var user in users.OrderBy(u => u.Nic.IPv4 is null))
        {
            try
            {
                foreach (var assignment in Plan([user], (_, mac) => leases.GetValueOrDefault(mac))) WriteHost(assignment);
            }
            catch (EngineException e)
            {
                EngineLog.Write(e.Message);
            }
        }
        m.Dhcp.EndLeasesWithoutHost();
    }

    private List<(string Container, NicSpec Nic)> NicsOn(string network) =>
        _nics.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .SelectMany(kv => kv.Value.Where(n => n.Network == network).Select(n => (kv.Key, n))).ToList();

    /// <summary>
    /// Makes a container's NIC while its init waits: the veth's host end joins the bridge, the
    /// peer is created in the init's network namespace with its name and MAC (sc-init brings it
    /// up). Returns the host end's name and index, for Detach.
    /// </summary>
    public HostInterface Attach(string container, NicSpec nic, int initPid)
    {
        string host = nic.HostNameFor(container);
        int index = BridgeFor(container, nic);
        // A test run can have the veth refused, to see the start aborted for that reason and nothing of it left.
        if (TestHooks.Faulty("nic-attach")) throw new NativeException(Libc.EIO, "create veth", $"{host} (peer {nic.Name} in pid {initPid})");
        try
        {
            _netlink.CreateVeth(host, index, nic.Name, nic.HwAddr!, initPid, 0);
        }
        catch (NativeException e) when (e.Errno == Libc.EEXIST && nic.HostName is null && _netlink.LinkIndex(host) is not null)
        {
            // A derived name is this NIC's alone: the link was left by a daemon that died before the container stopped.
            _netlink.DeleteLink(host);
            _netlink.CreateVeth(host, index, nic.Name, nic.HwAddr!, initPid, 0);
        }
        return new HostInterface(host, _netlink.LinkIndex(host) ?? throw new NativeException(RtNetlink.ENODEV, "find link", host));
    }

    /// <summary>
    /// Takes in a NIC's host end that criu made in the empty network namespace it restored from
    /// (ContainerCheckpoint): moved here, made a port of the NIC's bridge and brought up.
    /// </summary>
    public HostInterface Adopt(string container, NicSpec nic, SafeFd staging)
    {
        string host = nic.HostNameFor(container);
        int index = BridgeFor(container, nic);
        using (var there = NetworkNamespaceThread.Run(staging, () => new RtNetlink()))
        {
            try
            {
                there.MoveToNetns(host, Environment.ProcessId);
            }
            catch (NativeException e) when (e.Errno == Libc.EEXIST && nic.HostName is null && _netlink.LinkIndex(host) is not null)
            {
                // As in Attach: a derived name is this NIC's alone, left here by a daemon that died before the container stopped.
                _netlink.DeleteLink(host);
                there.MoveToNetns(host, Environment.ProcessId);
            }
        }
        try
        {
            _netlink.SetMasterUp(host, index);
            return new HostInterface(host, _netlink.LinkIndex(host) ?? throw new NativeException(RtNetlink.ENODEV, "find link", host));
        }
        catch
        {
            _netlink.DeleteLink(host);
            throw;
        }
    }

    /// <summary>
    /// The index of the bridge a NIC joins, once the previous run's host end of that name is gone
    /// (a restart reuses the name); a NIC left without an address gets one.
    /// </summary>
    private int BridgeFor(string container, NicSpec nic)
    {
        string network = nic.Network!;
        int index;
        Task? detaching;
        lock (_lock)
        {
            var m = _networks.TryGetValue(network, out var found) ? found
                : throw EngineException.NotFound("NetworkNotFound", $"network '{network}' of container '{container}' ({NicSpec.Key(nic.Device, "network")}) not found");
            // A NIC left without an address at daemon start (its network was full then) gets one now, or the start is refused.
            if (nic.HwAddrText is { } mac && !m.Hosts.ContainsKey(mac))
                foreach (var assignment in Plan([(container, nic)], preferred: null)) WriteHost(assignment);
            index = _netlink.LinkIndex(network) ?? RecreateBridge(m);
            _detaching.TryGetValue(nic.HostNameFor(container), out detaching);
        }
        detaching?.Wait();
        return index;
    }

    /// <summary>
    /// Hot-plugs a NIC into a running container: the veth is made as at start, and its peer is
    /// brought up from inside the container's network namespace (the container's own DHCP client
    /// takes it from there, as systemd-networkd does for any new veth).
    /// </summary>
    public HostInterface Plug(string container, NicSpec nic, int initPid)
    {
        var host = Attach(container, nic, initPid);
        try
        {
            using var inside = RtNetlink.OpenIn($"/proc/{initPid}/ns/net");
            inside.SetUp(nic.Name);
            return host;
        }
        catch
        {
            Detach(host);
            throw;
        }
    }

    /// <summary>
    /// The host ends a running container has now (for one adopted after a daemon restart): only
    /// a veth whose peer is the container's NIC, and that names it as its peer in turn, so a host
    /// interface that took a NIC's name is never adopted (and so never deleted at stop).
    /// </summary>
    public List<HostInterface> HostInterfacesOf(string container, IEnumerable<NicSpec> nics, int initPid)
    {
        var adopted = new List<HostInterface>();
        var bridged = nics.Where(n => n.Type == NicType.Bridged).ToList();
        if (bridged.Count == 0) return adopted;
        RtNetlink inside;
        try
        {
            inside = RtNetlink.OpenIn($"/proc/{initPid}/ns/net");
        }
        catch (NativeException e)
        {
            // An init that died while the daemon was away (a zombie has no namespaces): its NICs went with it.
            EngineLog.Write($"not adopting the NICs of container '{container}': {e.Message}");
            return adopted;
        }
        using (inside)
        {
            foreach (var nic in bridged)
            {
                string host = nic.HostNameFor(container);
                if (_netlink.Link(host) is not { } link) continue;
                if (link.Peer is int peer && inside.Link(peer) is { } end && end.Name == nic.Name && end.Peer == link.Index)
                    adopted.Add(new HostInterface(host, link.Index));
                else
                    EngineLog.Write($"not adopting host interface '{host}' for container '{container}': it is not the peer of the container's {nic.Name}");
            }
        }
        return adopted;
    }

    /// <summary>The bridge vanished (deleted by hand): it is made again, and dnsmasq and the DHCP server bind to the new one.</summary>
    private int RecreateBridge(Managed m)
    {
        SetUpBridge(m.Record.Name, m.Config, existing: true);
        m.Dnsmasq.Restart(m.Config);
        m.Dhcp.Stop();
        m.Dhcp.Start();
        return _netlink.LinkIndex(m.Record.Name) ?? throw new NativeException(RtNetlink.ENODEV, "find bridge", m.Record.Name);
    }

    /// <summary>
    /// Removes a container NIC's host end (and with it the peer) in the background, by index, so
    /// a newer link of the same name is never hit; an Attach of that name waits for it.
    /// </summary>
    public void Detach(HostInterface nic)
    {
        lock (_lock)
        {
            var previous = _detaching.GetValueOrDefault(nic.Name) ?? Task.CompletedTask;
            Task deletion = null!;
            deletion = previous.ContinueWith(_ =>
            {
                try { _deleter.DeleteLink(nic.Index); }
                catch (NativeException e) { EngineLog.Write(e.Message); }
                lock (_lock)
                    if (_detaching.GetValueOrDefault(nic.Name) == deletion) _detaching.Remove(nic.Name);
            }, TaskScheduler.Default);
            _detaching[nic.Name] = deletion;
        }
    }

    /// <summary>Waits until the host ends of stopped containers are gone.</summary>
    private void WaitForDetached()
    {
        Task[] pending;
        lock (_lock) pending = [.. _detaching.Values];
        Task.WaitAll(pending);
    }

    /// <summary>The DHCP server's leases, with each container's fixed addresses marked static (and listed even before it asked).</summary>
    public IReadOnlyList<NetworkLease> Leases(string name)
    {
        lock (_lock)
        {
            var m = Find(name);
            var users = NicsOn(name);
            var leases = new List<NetworkLease>();
            foreach (var lease in m.Dhcp.Leases())
            {
                var owner = users.FirstOrDefault(u => u.Nic.HwAddrText == lease.HwAddr);
                bool isStatic = owner.Nic?.IPv4?.ToString() == lease.Address;
                leases.Add(lease with { Hostname = owner.Container ?? lease.Hostname, Type = isStatic ? "static" : "dynamic" });
            }
            foreach (var (container, nic) in users)
                if (nic.IPv4 is { } fixedAddress && !leases.Any(l => l.Address == fixedAddress.ToString()))
                    leases.Add(new NetworkLease(container, nic.HwAddrText ?? "", fixedAddress.ToString(), "static", null));
            return leases;
        }
    }

    private void CheckOverlaps(string name, NetworkConfig config)
    {
        foreach (var (other, m) in _networks)
        {
            if (other == name) continue;
            if (m.Config.IPv4.Overlaps(config.IPv4))
                throw EngineException.Conflict("SubnetOverlap", $"{config.IPv4} overlaps network '{other}' ({m.Config.IPv4})");
            if (config.IPv6 is { } v6 && m.Config.IPv6 is { } o && o.Overlaps(v6))
                throw EngineException.Conflict("SubnetOverlap", $"{v6} overlaps network '{other}' ({o})");
        }
        foreach (var route in HostRoutes(except: name))
            if (route.Overlaps(config.IPv4))
                throw EngineException.Conflict("SubnetOverlap", $"{config.IPv4} overlaps the host's route to {route.NetworkCidr}");
    }

    /// <summary>The IPv4 routes of the daemon's network namespace but the default one and those of its own bridges.</summary>
    private List<IpSubnet> HostRoutes(string? except = null)
    {
        var routes = new List<IpSubnet>();
        foreach (var line in File.ReadLines("/proc/net/route").Skip(1))
        {
            var f = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (f.Length < 8 || _networks.ContainsKey(f[0]) || f[0] == except) continue;
            uint dest = uint.Parse(f[1], NumberStyles.HexNumber), mask = uint.Parse(f[7], NumberStyles.HexNumber);
            if (mask == 0) continue;
            int prefix = System.Numerics.BitOperations.PopCount(mask);
            // /proc/net/route prints addresses in host (little-endian) byte order.
            routes.Add(new IpSubnet(new IPAddress(BitConverter.GetBytes(dest)), prefix));
        }
        return routes;
    }

    /// <summary>Creates the bridge with its addresses (or, for an existing network, makes sure they are there).</summary>
    private void SetUpBridge(string name, NetworkConfig config, bool existing)
    {
        if (!existing || _netlink.LinkIndex(name) is null) _netlink.CreateBridge(name, BridgeMac(name));
        SetSysctls(name, config);
        int index = _netlink.LinkIndex(name) ?? throw new NativeException(RtNetlink.ENODEV, "find bridge", name);
        foreach (var subnet in new[] { config.IPv4, config.IPv6 }.OfType<IpSubnet>())
        {
            try
            {
                _netlink.AddAddress(index, subnet.Address, subnet.PrefixLength, name);
            }
            catch (NativeException e) when (existing && e.Errno == Libc.EEXIST)
            {
            }
        }
    }

    /// <summary>A locally administered MAC derived from the network's name, the same whenever the bridge is made again.</summary>
    internal static PhysicalAddress BridgeMac(string name)
    {
        byte[] mac = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("systemcontainers-bridge/" + name))[..6];
        mac[0] = 0x0a;
        return new PhysicalAddress(mac);
    }

    private static void SetSysctls(string bridge, NetworkConfig config)
    {
        WriteSysctl($"ipv6/conf/{bridge}/disable_ipv6", config.IPv6 is null ? "1" : "0");
        if (config.IPv6 is not null) WriteSysctl($"ipv6/conf/{bridge}/accept_dad", "0");
        if (config.Nat4) WriteSysctl("ipv4/ip_forward", "1");
        if (config.Nat6) WriteSysctl("ipv6/conf/all/forwarding", "1");
    }

    /// <summary>Writes /proc/sys/net/..., which belongs to the daemon's network namespace.</summary>
    private static void WriteSysctl(string key, string value)
    {
        string path = "/proc/sys/net/" + key;
        try
        {
            File.WriteAllText(path, value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new EngineException(FailureKind.Failed, "SysctlFailed", $"cannot write {value} to {path}: {e.Message}", e);
        }
    }

    private void ApplyFirewall() => _firewall.Apply(_networks.Select(kv => (kv.Key, kv.Value.Config)));

    private void TryApplyFirewall()
    {
        try { ApplyFirewall(); }
        catch (EngineException e) { EngineLog.Write(e.Message); }
    }

    private void WriteRecord(NetworkRecord record) =>
        Sys.WriteFileAtomic(Path.Combine(StateRoot, record.Name, "network.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json));

    private Managed Find(string name) =>
        _networks.TryGetValue(name, out var m) ? m : throw EngineException.NotFound("NetworkNotFound", $"network '{name}' not found");

    private NetworkView View(Managed m)
    {
        var c = m.Config;
        var users = NicsOn(m.Record.Name).Select(u => u.Container).Distinct().ToList();
        return new NetworkView(m.Record.Name, m.Record.Config, c.IPv4.ToString(), c.IPv6?.ToString(), c.Nat4 || c.Nat6, c.Domain,
            users, m.Dnsmasq.Pid, m.Record.Created);
    }

    /// <summary>
    /// Daemon shutdown: bridges and dnsmasqs stay for the running containers; the next daemon
    /// adopts them. DHCP stops until then: clients keep their leases (an hour) and renew from it.
    /// </summary>
    public void Dispose()
    {
        WaitForDetached();
        lock (_lock)
            foreach (var m in _networks.Values)
            {
                m.Dhcp.Dispose();
                m.Dnsmasq.Dispose();
            }
        _netlink.Dispose();
        _deleter.Dispose();
    }
}
