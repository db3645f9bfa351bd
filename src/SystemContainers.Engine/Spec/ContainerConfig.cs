using System.Collections.Immutable;
using System.Globalization;

namespace SystemContainers.Engine.Spec;

/// <summary>
/// The container config keys this engine understands, parsed and validated once. Unknown keys
/// are refused so a typo never silently does nothing; user.* keys are free-form, as in LXD.
/// </summary>
public sealed record ContainerConfig
{
    public const string Privileged = "security.privileged";
    public const string IdmapBase = "security.idmap.base";
    public const string IdmapSize = "security.idmap.size";
    public const string IdmapIsolated = "security.idmap.isolated";
    public const string Nesting = "security.nesting";
    public const string LxcfsViews = "security.lxcfs";
    public const string Stateful = "migration.stateful";
    public const string StopTimeout = "boot.stop.timeout";
    public const string Autostart = "boot.autostart";
    public const string AutostartPriority = "boot.autostart.priority";
    public const string AutostartDelay = "boot.autostart.delay";
    public const string EnvironmentPrefix = "environment.";
    public const string UserPrefix = "user.";

    public static readonly IReadOnlyList<string> Keys =
        [Privileged, IdmapBase, IdmapSize, IdmapIsolated, Nesting, LxcfsViews, Stateful, SyscallAllowList.Key, StopTimeout, Autostart, AutostartPriority, AutostartDelay, .. ResourceLimits.Keys, .. SnapshotSettings.Keys];

    /// <summary>The longest key: keys are names, not data.</summary>
    public const int MaxKeyLength = 255;

    // The structured keys are parsed here, once: a config is consulted on every start, exec and stop.
    private ContainerConfig(ImmutableSortedDictionary<string, string> raw)
    {
        Raw = raw;
        Limits = ResourceLimits.Parse(raw, System.Environment.ProcessorCount, HostMemoryBytes);
        Nics = NicSpec.ParseAll(raw);
        Proxies = ProxySpec.ParseAll(raw);
        Disks = DiskSpec.ParseAll(raw);
        Snapshots = SnapshotSettings.Parse(raw);
        foreach (var group in Nics.Select(n => (n.Device, Type: "a NIC")).Concat(Proxies.Select(p => (p.Device, Type: "a proxy device")))
                     .Concat(Disks.Select(d => (d.Device, Type: "a disk device"))).GroupBy(d => d.Device).Where(g => g.Count() > 1))
            throw EngineException.Invalid("InvalidConfigKey", $"device name '{group.Key}' is used by {string.Join(" and ", group.Select(d => d.Type))}; device names are unique");
    }

    public ImmutableSortedDictionary<string, string> Raw { get; }

    public bool IsPrivileged => Raw.TryGetValue(Privileged, out var v) && ParseBool(Privileged, v);

    /// <summary>
    /// Whether container root may run containers of its own (LXD's key): the masks are then made
    /// in the container's own user namespace, which can mount a fresh procfs, instead of one above
    /// it, where the kernel locks them. migration.stateful implies it: criu cannot restore nested user namespaces.
    /// </summary>
    public bool IsNesting => IsStateful || (Raw.TryGetValue(Nesting, out var v) && ParseBool(Nesting, v));

    /// <summary>
    /// Whether the container can be stopped with its state and started from it (LXD's key): it
    /// then has one user namespace and its console in its own devpts, so criu can dump it.
    /// </summary>
    public bool IsStateful => Raw.TryGetValue(Stateful, out var v) && ParseBool(Stateful, v);

    /// <summary>Whether lxcfs's files cover the container's /proc and /sys entries (the default), so its tools see its limits.</summary>
    public bool IsLxcfs => !Raw.TryGetValue(LxcfsViews, out var v) || ParseBool(LxcfsViews, v);

    public long? IdmapBaseValue => Raw.TryGetValue(IdmapBase, out var v) ? ParseCount(IdmapBase, v, IdMap.FirstUnprivilegedId, IdMap.LastMappableId) : null;

    /// <summary>Whether the container's ids are its own (the default) or the map shared by every non-isolated container.</summary>
    public bool IsIdmapIsolated => IsIsolated(Raw);

    /// <summary>The same from a stored config without parsing all of it; a value that does not parse counts as isolated.</summary>
    public static bool IsIsolated(IReadOnlyDictionary<string, string> raw) =>
        !raw.TryGetValue(IdmapIsolated, out var v) || v.ToLowerInvariant() is not ("false" or "0" or "no" or "off" or "");

    public long? IdmapSizeValue => Raw.TryGetValue(IdmapSize, out var v) ? ParseCount(IdmapSize, v, IdMap.DefaultSize, IdMap.LastMappableId) : null;

    /// <summary>The denied calls security.syscalls.allow gives back.</summary>
    public IReadOnlyList<string> SyscallsAllowed => Raw.TryGetValue(SyscallAllowList.Key, out var v) ? SyscallAllowList.Parse(v) : [];

    public TimeSpan StopTimeoutValue =>
        TimeSpan.FromSeconds(Raw.TryGetValue(StopTimeout, out var v) ? ParseCount(StopTimeout, v, 0, 3600) : 30);

    /// <summary>Whether the daemon starts the container when it starts (boot.autostart).</summary>
    public bool IsAutostart => Raw.TryGetValue(Autostart, out var v) && ParseBool(Autostart, v);

    /// <summary>Autostart order: higher first (boot.autostart.priority, default 0).</summary>
    public long AutostartPriorityValue => Raw.TryGetValue(AutostartPriority, out var v) ? ParseCount(AutostartPriority, v, 0, 1_000_000) : 0;

    /// <summary>How long autostart waits after starting this container before the next (boot.autostart.delay, seconds).</summary>
    public TimeSpan AutostartDelayValue =>
        TimeSpan.FromSeconds(Raw.TryGetValue(AutostartDelay, out var v) ? ParseCount(AutostartDelay, v, 0, 3600) : 0);

    /// <summary>The limits.* keys, validated against this host's CPUs and memory.</summary>
    public ResourceLimits Limits { get; }

    // Read once: configs are parsed on every exec, start and stats call, and the host's memory does not change.
    private static readonly Lazy<long> HostMemory = new(() =>
        File.ReadLines("/proc/meminfo").Where(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024).FirstOrDefault(long.MaxValue / 128));

    private static long HostMemoryBytes => HostMemory.Value;

    public IEnumerable<KeyValuePair<string, string>> Environment =>
        Raw.Where(kv => kv.Key.StartsWith(EnvironmentPrefix, StringComparison.Ordinal))
           .Select(kv => KeyValuePair.Create(kv.Key[EnvironmentPrefix.Length..], kv.Value));

    /// <summary>The network devices (nic.&lt;device&gt;.* keys), validated.</summary>
    public IReadOnlyList<NicSpec> Nics { get; }

    /// <summary>The proxy devices (proxy.&lt;device&gt;.* keys), validated.</summary>
    public IReadOnlyList<ProxySpec> Proxies { get; }

    /// <summary>The disk devices (disk.&lt;device&gt;.* keys), validated.</summary>
    public IReadOnlyList<DiskSpec> Disks { get; }

    /// <summary>The snapshots.* keys: the schedule, the name pattern and the expiry, validated.</summary>
    public SnapshotSettings Snapshots { get; }

    /// <summary>The devices that get a veth on a managed bridge.</summary>
    public IEnumerable<NicSpec> BridgedNics => Nics.Where(n => n.Type == NicType.Bridged);

    public static ContainerConfig Empty { get; } = new(ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal));

    /// <summary>
    /// The stored spelling of a key given in any case (PowerShell's hashtables ignore case, so
    /// people type Limits.Memory): a known key as it is listed; for user.*, environment.*,
    /// nic., proxy. and disk.&lt;device&gt;.&lt;property&gt; the prefix and the
    /// property in lower case, while the user key, the variable and the device keep theirs.
    /// </summary>
    public static string CanonicalKey(string key)
    {
        foreach (var known in Keys)
            if (string.Equals(known, key, StringComparison.OrdinalIgnoreCase)) return known;
        foreach (var prefix in (ReadOnlySpan<string>)[UserPrefix, EnvironmentPrefix])
            if (key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return prefix + key[prefix.Length..];
        foreach (var prefix in (ReadOnlySpan<string>)[NicSpec.Prefix, ProxySpec.Prefix, DiskSpec.Prefix])
        {
            if (!key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) continue;
            string rest = key[prefix.Length..];
            int dot = rest.IndexOf('.');
            return prefix + (dot < 0 ? rest : rest[..dot] + rest[dot..].ToLowerInvariant());
        }
        return key;
    }

    /// <summary>Validates every key and value; throws an InvalidArgument EngineException naming the first bad one.</summary>
    public static ContainerConfig Parse(IReadOnlyDictionary<string, string>? values)
    {
        var builder = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (given, value) in values ?? new Dictionary<string, string>())
        {
            if (given is null || given.Length is 0 or > MaxKeyLength || given.Any(c => char.IsControl(c) || char.IsWhiteSpace(c)))
                throw EngineException.Invalid("InvalidConfigKey",
                    $"config key '{DisplayText.Escape(given)}' is invalid: 1 to {MaxKeyLength} characters without spaces or control characters");
            string key = CanonicalKey(given);
            if (builder.ContainsKey(key))
                throw EngineException.Invalid("InvalidConfigKey", $"config key '{key}' is given twice ('{given}'); keys are matched without regard to case");
            if (value is null)
                throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' has no value");
            if (value.Contains('\n') || value.Contains('\0'))
                throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' has a value with a newline or NUL character");
            if (key.StartsWith(UserPrefix, StringComparison.Ordinal) && key.Length > UserPrefix.Length) { }
            else if (NicSpec.IsNicKey(key) || ProxySpec.IsProxyKey(key) || DiskSpec.IsDiskKey(key)) { }
            else if (key.StartsWith(EnvironmentPrefix, StringComparison.Ordinal) && key.Length > EnvironmentPrefix.Length)
                ExecLimits.CheckVariableName(key[EnvironmentPrefix.Length..], "InvalidConfigKey", key);
            else if (!Keys.Contains(key))
                throw EngineException.Invalid("UnknownConfigKey",
                    $"unknown config key '{key}'; known keys: {string.Join(", ", Keys)}, {EnvironmentPrefix}*, {UserPrefix}*, {NicSpec.Prefix}<device>.*, {ProxySpec.Prefix}<device>.*, {DiskSpec.Prefix}<device>.*");
            builder[key] = value;
        }
        var config = new ContainerConfig(builder.ToImmutable());
        // Check the other typed values now too, so a bad value fails here and not at start.
        _ = config.IsPrivileged;
        _ = config.IdmapBaseValue;
        _ = config.IdmapSizeValue;
        if (config.Raw.TryGetValue(IdmapIsolated, out var isolated)) ParseBool(IdmapIsolated, isolated);
        _ = config.IsNesting;
        if (config.IsStateful && config.Raw.TryGetValue(Nesting, out var nesting) && !ParseBool(Nesting, nesting))
            throw EngineException.Invalid("InvalidConfigValue",
                $"'{Stateful}=true' needs one user namespace ('{Nesting}=true', which it implies); it cannot be combined with '{Nesting}={nesting}'");
        _ = config.IsLxcfs;
        _ = config.StopTimeoutValue;
        _ = config.IsAutostart;
        _ = config.AutostartPriorityValue;
        _ = config.AutostartDelayValue;
        _ = config.SyscallsAllowed;
        if (config.IdmapBaseValue is long b && b + (config.IdmapSizeValue ?? IdMap.DefaultSize) - 1 > IdMap.LastMappableId)
            throw EngineException.Invalid("InvalidConfigValue",
                $"'{IdmapBase}' {b} with size {config.IdmapSizeValue ?? IdMap.DefaultSize} must lie within host ids {IdMap.FirstUnprivilegedId}-{IdMap.LastMappableId}");
        var environment = config.Environment.ToDictionary(StringComparer.Ordinal);
        if (ExecLimits.CheckEnvironment(environment, "InvalidConfigValue") is var bytes and > ExecLimits.MaxConfigEnvironmentBytes)
            throw EngineException.Invalid("InvalidConfigValue",
                $"the environment.* keys take {bytes} bytes; at most {ExecLimits.MaxConfigEnvironmentBytes} are allowed, so every exec has room for its own");
        return config;
    }

    internal static bool ParseBool(string key, string value) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" or "on" => true,
        "false" or "0" or "no" or "off" or "" => false,
        _ => throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' must be true or false, not '{value}'"),
    };

    private static long ParseCount(string key, string value, long min, long max)
    {
        if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n < min || n > max)
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' must be a whole number from {min} to {max}, not '{value}'");
        return n;
    }
}
