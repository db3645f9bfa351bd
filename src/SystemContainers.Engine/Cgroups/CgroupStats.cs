namespace SystemContainers.Engine.Cgroups;

/// <summary>What a container's cgroups say about its use; a null limit means unlimited.</summary>
public sealed record CgroupStats(
    long CpuUsageNanoseconds,
    long CpuUserNanoseconds,
    long CpuSystemNanoseconds,
    long MemoryUsageBytes,
    long MemoryPeakBytes,
    long? MemoryLimitBytes,
    long MemoryCacheBytes,
    long MemorySwapBytes,
    long MemoryLimitHits,
    long OomKills,
    long Processes,
    long? ProcessesLimit,
    bool Frozen);
