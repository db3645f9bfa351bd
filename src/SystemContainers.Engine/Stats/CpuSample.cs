namespace SystemContainers.Engine.Stats;

/// <summary>A container's cumulative CPU time at one moment; the one place a CPU rate is computed from two of them.</summary>
public readonly record struct CpuSample(DateTimeOffset At, long CpuNanoseconds)
{
    /// <summary>The CPU used since an earlier sample, 100 being one CPU fully used; never negative.</summary>
    public double PercentSince(CpuSample earlier)
    {
        var interval = At - earlier.At;
        if (interval.TotalMilliseconds <= 0) return 0;
        return Math.Max(0, (CpuNanoseconds - earlier.CpuNanoseconds) / (interval.TotalMilliseconds * 1e6) * 100);
    }
}
