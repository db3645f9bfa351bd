using System.Globalization;
using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Spec;

/// <summary>
/// The limits.* keys, parsed into what the cgroup drivers write. Null means "no limit".
/// limits.cpu: a count N (N host CPUs, chosen by the engine) or a list/range ("0-1", "0,2");
/// limits.cpu.allowance: "50%" (a relative weight) or "25ms/100ms" (a hard quota per period);
/// limits.cpu.priority: 0-10, 5 being the kernel's default weight (used when no percentage allowance is set);
/// limits.memory: bytes, with a kB/MB/GB/KiB/MiB/GiB suffix, or a percentage of host memory;
/// limits.memory.swap: true/false; limits.memory.enforce: hard/soft;
/// limits.processes: the most processes; limits.disk.priority: 0-10 (I/O weight);
/// limits.disk: the root disk's size in bytes (LXD's root disk device size), which the storage
/// driver enforces (btrfs: a qgroup limit) rather than a cgroup.
/// </summary>
public sealed partial record ResourceLimits
{
    public const string Cpu = "limits.cpu", CpuAllowance = "limits.cpu.allowance", CpuPriority = "limits.cpu.priority",
        Memory = "limits.memory", MemorySwap = "limits.memory.swap", MemoryEnforce = "limits.memory.enforce",
        Processes = "limits.processes", DiskPriority = "limits.disk.priority", Disk = "limits.disk";

    public static readonly IReadOnlyList<string> Keys = [Cpu, CpuAllowance, CpuPriority, Memory, MemorySwap, MemoryEnforce, Processes, DiskPriority, Disk];

    /// <summary>CPUs to pin to, as a cpuset list; null for all.</summary>
    public string? CpuSet { get; init; }
    /// <summary>How many CPUs limits.cpu asks for when it is a count (the engine picks which).</summary>
    public int? CpuCount { get; init; }
    /// <summary>Relative CPU weight on the cgroup v1 scale (cpu.shares, 2-262144, default 1024).</summary>
    public long? CpuShares { get; init; }
    public long? CpuQuotaMicroseconds { get; init; }
    public long CpuPeriodMicroseconds { get; init; } = 100_000;
    public long? MemoryBytes { get; init; }
    public bool MemorySoft { get; init; }
    public bool SwapAllowed { get; init; } = true;
    public long? ProcessesMax { get; init; }
    /// <summary>I/O weight on the cgroup v1 blkio scale (10-1000, default 500).</summary>
    public long? IoWeight { get; init; }
    /// <summary>The most bytes the root file system may hold (limits.disk); null for no limit.</summary>
    public long? DiskBytes { get; init; }

    public static ResourceLimits None { get; } = new();

    // [0-9], not \d: \d also matches other scripts' digits, which the invariant parsers refuse.
    [GeneratedRegex(@"^([0-9]{1,9})(ms|us|s)/([0-9]{1,9})(ms|us|s)\z")]
    private static partial Regex QuotaPattern();

    [GeneratedRegex(@"^([0-9]{1,20}(?:\.[0-9]{1,9})?) ?(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB|k|K|M|G|T)?\z")]
    private static partial Regex BytesPattern();

    [GeneratedRegex(@"^[0-9]{1,3}(\.[0-9]{1,6})?%\z")]
    private static partial Regex PercentPattern();

    [GeneratedRegex(@"^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*\z")]
    private static partial Regex CpuListPattern();

    /// <summary>Parses and validates every limits.* key of a config; throws InvalidConfigValue naming the key.</summary>
    public static ResourceLimits Parse(IReadOnlyDictionary<string, string> config, int hostCpus, long hostMemory)
    {
        var r = new ResourceLimits();
        if (config.TryGetValue(Cpu, out var cpu))
        {
            if (int.TryParse(cpu, NumberStyles.None, CultureInfo.InvariantCulture, out int count) && !cpu.Contains('-') && !cpu.Contains(','))
            {
                if (count < 1 || count > hostCpus) throw Invalid(Cpu, cpu, $"a CPU count from 1 to {hostCpus}, or a list such as 0-1 or 0,2");
                r = r with { CpuCount = count };
            }
            else
            {
                if (!CpuListPattern().IsMatch(cpu)) throw Invalid(Cpu, cpu, "a CPU count, or a list such as 0-1 or 0,2");
                foreach (var part in cpu.Split(','))
                {
                    var ends = part.Split('-').Select(e => int.Parse(e, CultureInfo.InvariantCulture)).ToArray();
                    if (ends.Any(e => e >= hostCpus) || (ends.Length == 2 && ends[0] > ends[1]))
                        throw Invalid(Cpu, cpu, $"CPUs that exist on this host (0-{hostCpus - 1})");
                }
                r = r with { CpuSet = cpu };
            }
        }
        long? priorityShares = null;
        if (config.TryGetValue(CpuPriority, out var prio))
            priorityShares = Math.Max(2, 1024 * (ParseRange(CpuPriority, prio, 0, 10) + 1) / 6);
        if (config.TryGetValue(CpuAllowance, out var allowance))
        {
            var q = QuotaPattern().Match(allowance);
            if (allowance.EndsWith('%') && long.TryParse(allowance[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out long pct) && pct is >= 1 and <= 100)
                r = r with { CpuShares = Math.Max(2, 1024 * pct / 100) };
            else if (q.Success)
            {
                // At most 9 digits each, so the microseconds fit a long; the quota is capped at
                // MaxQuotaMicroseconds, far below what the kernel takes.
                long quota = Micro(long.Parse(q.Groups[1].Value, CultureInfo.InvariantCulture), q.Groups[2].Value);
                long period = Micro(long.Parse(q.Groups[3].Value, CultureInfo.InvariantCulture), q.Groups[4].Value);
                if (period < 1000 || period > 1_000_000 || quota < 1000 || quota > MaxQuotaMicroseconds)
                    throw Invalid(CpuAllowance, allowance, "a quota of 1ms to 1000s per period of 1ms to 1s, such as 25ms/100ms");
                r = r with { CpuQuotaMicroseconds = quota, CpuPeriodMicroseconds = period, CpuShares = priorityShares };
            }
            else throw Invalid(CpuAllowance, allowance, "a percentage from 1% to 100% or a quota such as 25ms/100ms");
        }
        else r = r with { CpuShares = priorityShares };
        if (config.TryGetValue(Memory, out var mem)) r = r with { MemoryBytes = ParseMemory(mem, hostMemory) };
        if (config.TryGetValue(MemorySwap, out var swap)) r = r with { SwapAllowed = ParseBool(MemorySwap, swap) };
        if (config.TryGetValue(MemoryEnforce, out var enforce))
            r = r with
            {
                MemorySoft = enforce switch
                {
                    "hard" => false,
                    "soft" => true,
                    _ => throw Invalid(MemoryEnforce, enforce, "hard or soft"),
                },
            };
        if (config.TryGetValue(Processes, out var procs)) r = r with { ProcessesMax = ParseRange(Processes, procs, 1, 4_194_304) };
        if (config.TryGetValue(DiskPriority, out var disk)) r = r with { IoWeight = 10 + ParseRange(DiskPriority, disk, 0, 10) * 99 };
        if (config.TryGetValue(Disk, out var size))
        {
            double bytes = ParseBytes(Disk, size, "bytes such as 10GiB or 500MB");
            if (bytes < MinDiskBytes || bytes > MaxDiskBytes) throw Invalid(Disk, size, "from 16MiB to 1EiB");
            r = r with { DiskBytes = (long)bytes };
        }
        return r;
    }

    /// <summary>The largest CPU quota per period limits.cpu.allowance takes: 1000s, a thousand CPUs' worth at the longest period.</summary>
    public const long MaxQuotaMicroseconds = 1_000_000_000;

    /// <summary>The smallest memory limit: below it not even an init runs.</summary>
    public const long MinMemoryBytes = 4L << 20;

    /// <summary>The smallest root disk: btrfs counts a subvolume's metadata against its limit, so less leaves no room for files.</summary>
    public const long MinDiskBytes = 16L << 20, MaxDiskBytes = 1L << 60;

    private static long ParseMemory(string value, long hostMemory)
    {
        if (value.EndsWith('%'))
        {
            // Plain decimals only: NumberStyles.Float would take "NaN", "1e-300" and spaces.
            if (!PercentPattern().IsMatch(value) || !double.TryParse(value[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double pct)
                || pct <= 0 || pct > 100)
                throw Invalid(Memory, value, "bytes such as 512MiB, or a percentage of host memory from 1% to 100%");
            long share = (long)(hostMemory * pct / 100);
            if (share < MinMemoryBytes) throw Invalid(Memory, value, $"a percentage that gives at least 4MiB of this host's {hostMemory} bytes");
            return share;
        }
        double bytes = ParseBytes(Memory, value, "bytes such as 536870912, 512MiB or 2GB, or a percentage such as 50%");
        if (bytes < MinMemoryBytes) throw Invalid(Memory, value, "at least 4MiB");
        if (bytes > (double)hostMemory * 64) throw Invalid(Memory, value, "no more than the host could ever give");
        return (long)bytes;
    }

    /// <summary>Bytes with an optional unit, as a double: the product may be far beyond a long, so callers compare before converting.</summary>
    private static double ParseBytes(string key, string value, string expected)
    {
        var m = BytesPattern().Match(value);
        if (!m.Success) throw Invalid(key, value, expected);
        double n = double.Parse(m.Groups[1].Value, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture);
        long unit = m.Groups[2].Value switch
        {
            "" or "B" => 1,
            "kB" or "KB" => 1000, "MB" => 1_000_000, "GB" => 1_000_000_000, "TB" => 1_000_000_000_000,
            "k" or "K" or "KiB" => 1L << 10, "M" or "MiB" => 1L << 20, "G" or "GiB" => 1L << 30, _ => 1L << 40,
        };
        return n * unit;
    }

    private static long Micro(long n, string unit) => unit switch { "s" => n * 1_000_000, "ms" => n * 1000, _ => n };

    private static long ParseRange(string key, string value, long min, long max) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n >= min && n <= max
            ? n : throw Invalid(key, value, $"a whole number from {min} to {max}");

    private static bool ParseBool(string key, string value) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" or "on" => true,
        "false" or "0" or "no" or "off" => false,
        _ => throw Invalid(key, value, "true or false"),
    };

    private static EngineException Invalid(string key, string value, string expected) =>
        EngineException.Invalid("InvalidConfigValue", $"config key '{key}' must be {expected}, not '{value}'");
}
