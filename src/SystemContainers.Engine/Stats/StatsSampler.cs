using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Stats;

/// <summary>A container's cumulative counters at one moment: cgroup, interfaces, disk.</summary>
public sealed record CounterSample(DateTimeOffset At, CgroupStats? Cgroup, IReadOnlyList<InterfaceStats> Network, TreeUsageResult Disk)
{
    public CpuSample Cpu => new(At, Cgroup?.CpuUsageNanoseconds ?? 0);
}

/// <summary>Reads counters only; whoever keeps the previous sample computes rates (CpuSample.PercentSince).</summary>
public sealed class StatsSampler(ICgroupDriver cgroups)
{
    /// <summary>A stopped container (no cgroup, no init) has only its disk.</summary>
    public CounterSample Read(string upperDir, ContainerCgroup? cgroup, int? pid)
    {
        var disk = TreeUsage.Measure(upperDir, TreeUsage.DefaultMaxEntries, TreeUsage.DefaultBudget);
        var cg = cgroup is null ? null : cgroups.ReadStats(cgroup);
        var network = pid is int p ? NetworkOf(p) : [];
        return new CounterSample(DateTimeOffset.UtcNow, cg, network, disk);
    }

    /// <summary>Interface counters from /proc/&lt;pid&gt;/net/dev, which shows the namespace of that process.</summary>
    public static IReadOnlyList<InterfaceStats> NetworkOf(int pid)
    {
        var result = new List<InterfaceStats>();
        string[] lines;
        try { lines = File.ReadAllLines($"/proc/{pid}/net/dev"); }
        catch (IOException) { return result; }
        foreach (var line in lines.Skip(2))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var f = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10) continue;
            result.Add(new InterfaceStats(line[..colon].Trim(), long.Parse(f[0]), long.Parse(f[1]), long.Parse(f[8]), long.Parse(f[9])));
        }
        return result;
    }
}
