using SystemContainers.Engine.Cgroups;

namespace SystemContainers.Engine;

/// <summary>Counters of one network interface in the container's namespace.</summary>
public sealed record InterfaceStats(string Name, long RxBytes, long RxPackets, long TxBytes, long TxPackets);

/// <summary>
/// One sample of a container's resource use. CpuPercent is over the time since the previous
/// sample the daemon took (or since start), 100 being one CPU fully used. A stopped container
/// has Status Stopped and no Cgroup numbers; LastRunOomKills are the OOM kills of its last run.
/// DiskUsagePartial says why DiskUsageBytes counts only part of the tree (too many entries, too
/// deep, too slow), so one hostile tree never fails or stalls the samples of the others.
/// DiskLimitBytes is the root disk size (limits.disk), null when there is none.
/// </summary>
public sealed record ContainerStats(
    string Name,
    ContainerStatus Status,
    DateTimeOffset SampledAt,
    TimeSpan Uptime,
    CgroupStats? Cgroup,
    double CpuPercent,
    TimeSpan CpuInterval,
    IReadOnlyList<InterfaceStats> Network,
    long DiskUsageBytes,
    long LastRunOomKills = 0,
    string? DiskUsagePartial = null,
    long? DiskLimitBytes = null);
