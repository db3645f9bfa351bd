namespace SystemContainers.Engine.Spec;

/// <summary>The host ids that container uid/gid 0.. map to: a contiguous range each for users and groups.</summary>
public sealed record IdMap(long UidBase, long GidBase, long Size)
{
    public const long DefaultSize = 65536;

    /// <summary>Root's ids when /etc/subuid or /etc/subgid gives root none: LXD's default, 1000000 and the next billion.</summary>
    public static readonly (long Start, long Count) DefaultPool = (1_000_000, 1_000_000_000);

    /// <summary>Host ids below this are the system's own (users, services); no map may reach into them.</summary>
    public const long FirstUnprivilegedId = 65536;

    /// <summary>
    /// The highest host id a map may reach: 2^32-2. (uid_t)-1 is no id, and the kernel refuses an
    /// extent whose end wraps to 0 (base + size must stay below 2^32).
    /// </summary>
    public const long LastMappableId = (1L << 32) - 2;

    /// <summary>
    /// The range for a new container of root's. An explicit security.idmap.base is taken as given.
    /// Otherwise ids come from root's /etc/subuid and /etc/subgid ranges (else <see cref="DefaultPool"/>):
    /// a shared map (security.idmap.isolated=false) is the pool's first block, the one every shared
    /// container has; an isolated map (the default) is a block of its own that no other container
    /// has, so root escaping one container owns nothing of another's.
    /// </summary>
    public static IdMap ForConfig(ContainerConfig config, IEnumerable<IdMap> inUse, string etc = "/etc")
    {
        long size = config.IdmapSizeValue ?? DefaultSize;
        var taken = inUse.ToList();
        // ContainerConfig.Parse has checked that an explicit base and size lie within host ids 65536-(2^32-1).
        if (config.IdmapBaseValue is long b)
        {
            var explicitMap = new IdMap(b, b, size);
            if (config.IsIdmapIsolated && taken.FirstOrDefault(m => m.Overlaps(explicitMap)) is { } clash)
                throw EngineException.Conflict("IdRangeInUse",
                    $"host ids {b}-{b + size - 1} overlap another container's ({clash.UidBase}-{clash.UidBase + clash.Size - 1}); choose another '{ContainerConfig.IdmapBase}' or set '{ContainerConfig.IdmapIsolated}' to false");
            return explicitMap;
        }
        var uidPools = Pools(Path.Combine(etc, "subuid"), size);
        var gidPools = Pools(Path.Combine(etc, "subgid"), size);
        if (!config.IsIdmapIsolated)
        {
            if (size > uidPools[0].Count || size > gidPools[0].Count || uidPools[0].Start + size - 1 > LastMappableId || gidPools[0].Start + size - 1 > LastMappableId)
                throw EngineException.Invalid("InvalidConfigValue",
                    $"'{ContainerConfig.IdmapSize}' {size} is larger than root's first subordinate id range in {Path.Combine(etc, "subuid")} or {Path.Combine(etc, "subgid")}");
            return new IdMap(uidPools[0].Start, gidPools[0].Start, size);
        }
        // The first block stays the shared one; an isolated block is free in both pools.
        long? uid = FreeBlock(uidPools, size, taken.Select(m => (m.UidBase, m.Size)));
        long? gid = FreeBlock(gidPools, size, taken.Select(m => (m.GidBase, m.Size)));
        if (uid is null || gid is null)
            throw EngineException.Conflict("IdRangeExhausted",
                $"root's subordinate ids hold no free block of {size} for an isolated container ({taken.Count} in use); " +
                $"give root a larger range in {Path.Combine(etc, "subuid")} and {Path.Combine(etc, "subgid")} (for example root:1000000:1000000000), or set '{ContainerConfig.IdmapIsolated}' to false");
        return new IdMap(uid.Value, gid.Value, size);
    }

    public bool Overlaps(IdMap other) =>
        UidBase < other.UidBase + other.Size && other.UidBase < UidBase + Size ||
        GidBase < other.GidBase + other.Size && other.GidBase < GidBase + Size;

    /// <summary>The ids all containers share when not isolated: the first block of root's ranges.</summary>
    public static IdMap Shared(string etc = "/etc") =>
        new(Pools(Path.Combine(etc, "subuid"), DefaultSize)[0].Start, Pools(Path.Combine(etc, "subgid"), DefaultSize)[0].Start, DefaultSize);

    private static List<(long Start, long Count)> Pools(string file, long size)
    {
        var pools = RootRanges(file, size);
        if (pools.Count == 0) pools.Add(DefaultPool);
        return pools;
    }

    /// <summary>Root's ranges of at least size ids (clear of the system's ids) in a subordinate id file; none when it gives root none.</summary>
    public static List<(long Start, long Count)> RootRanges(string file, long size = DefaultSize)
    {
        var pools = new List<(long, long)>();
        if (File.Exists(file))
            foreach (var line in File.ReadLines(file))
            {
                var parts = line.Split(':');
                if (parts.Length == 3 && (parts[0] == "root" || parts[0] == "0") &&
                    long.TryParse(parts[1], out long start) && long.TryParse(parts[2], out long count) && count >= size && start >= FirstUnprivilegedId)
                    pools.Add((start, count));
            }
        return pools;
    }

    private static long? FreeBlock(List<(long Start, long Count)> pools, long size, IEnumerable<(long Base, long Size)> taken)
    {
        var used = taken.OrderBy(t => t.Base).ToList();
        for (int p = 0; p < pools.Count; p++)
        {
            var (start, count) = pools[p];
            for (long candidate = p == 0 ? start + size : start; candidate + size <= start + count; candidate += size)
            {
                var clash = used.FirstOrDefault(t => t.Base < candidate + size && candidate < t.Base + t.Size);
                if (clash == default) return candidate;
                // Skip past the block in the way, kept aligned to the pool's blocks.
                long past = clash.Base + clash.Size;
                candidate = start + (past - start + size - 1) / size * size - size;
            }
        }
        return null;
    }

    public int RootUid => (int)UidBase;
    public int RootGid => (int)GidBase;
}
