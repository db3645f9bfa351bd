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
    public const string StopTimeout = "boot.stop.timeout";
    public const string EnvironmentPrefix = "environment.";
    public const string UserPrefix = "user.";

    public static readonly IReadOnlyList<string> Keys = [Privileged, IdmapBase, IdmapSize, IdmapIsolated, Nesting, StopTimeout, .. ResourceLimits.Keys];

    // The structured keys are parsed here, once: a config is consulted on every start, exec and stop.
    private ContainerConfig(ImmutableSortedDictionary<string, string> raw)
    {
        Raw = raw;
        Limits = ResourceLimits.Parse(raw, System.Environment.ProcessorCount, HostMemoryBytes);
        Nics = NicSpec.ParseAll(raw);
    }

    public ImmutableSortedDictionary<string, string> Raw { get; }

    public bool IsPrivileged => Raw.TryGetValue(Privileged, out var v) && ParseBool(Privileged, v);

    /// <summary>
    /// Whether container root may run containers of its own (LXD's key): the masks are then made
    /// in the container's own user namespace, which can mount a fresh procfs, instead of one above
    /// it, where the kernel locks them.
    /// </summary>
    public bool IsNesting => Raw.TryGetValue(Nesting, out var v) && ParseBool(Nesting, v);

    public long? IdmapBaseValue => Raw.TryGetValue(IdmapBase, out var v) ? ParseCount(IdmapBase, v, 1, uint.MaxValue) : null;

    /// <summary>Whether the container's ids are its own (the default) or the map shared by every non-isolated container.</summary>
    public bool IsIdmapIsolated => IsIsolated(Raw);

    /// <summary>The same from a stored config without parsing all of it; a value that does not parse counts as isolated.</summary>
    public static bool IsIsolated(IReadOnlyDictionary<string, string> raw) =>
        !raw.TryGetValue(IdmapIsolated, out var v) || v.ToLowerInvariant() is not ("false" or "0" or "no" or "off" or "");

    public long? IdmapSizeValue => Raw.TryGetValue(IdmapSize, out var v) ? ParseCount(IdmapSize, v, 65536, uint.MaxValue) : null;

    public TimeSpan StopTimeoutValue =>
        TimeSpan.FromSeconds(Raw.TryGetValue(StopTimeout, out var v) ? ParseCount(StopTimeout, v, 0, 3600) : 30);

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

    /// <summary>The devices that get a veth on a managed bridge.</summary>
    public IEnumerable<NicSpec> BridgedNics => Nics.Where(n => n.Type == NicType.Bridged);

    public static ContainerConfig Empty { get; } = new(ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal));

    /// <summary>Validates every key and value; throws an InvalidArgument EngineException naming the first bad one.</summary>
    public static ContainerConfig Parse(IReadOnlyDictionary<string, string>? values)
    {
        var builder = ImmutableSortedDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in values ?? new Dictionary<string, string>())
        {
            if (value is null || value.Contains('\n') || value.Contains('\0'))
                throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' has an invalid value");
            if (key.StartsWith(UserPrefix, StringComparison.Ordinal) && key.Length > UserPrefix.Length) { }
            else if (NicSpec.IsNicKey(key)) { }
            else if (key.StartsWith(EnvironmentPrefix, StringComparison.Ordinal) && key.Length > EnvironmentPrefix.Length)
            {
                if (key[EnvironmentPrefix.Length..].Contains('='))
                    throw EngineException.Invalid("InvalidConfigKey", $"environment variable name in '{key}' must not contain '='");
            }
            else if (!Keys.Contains(key))
                throw EngineException.Invalid("UnknownConfigKey",
                    $"unknown config key '{key}'; known keys: {string.Join(", ", Keys)}, {EnvironmentPrefix}*, {UserPrefix}*, {NicSpec.Prefix}<device>.*");
            builder[key] = value;
        }
        var config = new ContainerConfig(builder.ToImmutable());
        // Check the other typed values now too, so a bad value fails here and not at start.
        _ = config.IsPrivileged;
        _ = config.IdmapBaseValue;
        _ = config.IdmapSizeValue;
        _ = config.IsIdmapIsolated;
        _ = config.IsNesting;
        _ = config.StopTimeoutValue;
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
