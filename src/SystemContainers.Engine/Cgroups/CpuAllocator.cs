using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// The CPUs a container is pinned to: its explicit list, or for a count the least used CPUs
/// among the other running containers' pins (so counts spread over the host), or null for all.
/// </summary>
public sealed class CpuAllocator(int processorCount)
{
    public CpuAllocator() : this(Environment.ProcessorCount) { }

    public string? Choose(ResourceLimits limits, IEnumerable<string> othersPins)
    {
        if (limits.CpuSet is not null) return limits.CpuSet;
        if (limits.CpuCount is not int count) return null;
        var use = new int[processorCount];
        foreach (var set in othersPins)
            foreach (int cpu in CpuList(set).Where(x => x < use.Length)) use[cpu]++;
        return string.Join(',', Enumerable.Range(0, use.Length).OrderBy(i => use[i]).ThenBy(i => i).Take(count).Order());
    }

    private static IEnumerable<int> CpuList(string set) =>
        set.Split(',').SelectMany(part =>
        {
            var ends = part.Split('-').Select(int.Parse).ToArray();
            return Enumerable.Range(ends[0], ends[^1] - ends[0] + 1);
        });
}
