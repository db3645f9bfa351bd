using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.Stats;

namespace SystemContainers.Engine.Tests;

public class ContainerStateTests
{
    [Theory]
    [InlineData(ContainerState.Stopped, true, false, false, false, false, true)]
    [InlineData(ContainerState.Running, false, true, true, false, true, false)]
    [InlineData(ContainerState.Frozen, false, true, false, true, false, false)]
    [InlineData(ContainerState.Stopping, false, false, false, false, false, false)]
    [InlineData(ContainerState.Damaged, false, false, false, false, false, true)]
    public void EachStateAllowsItsVerbs(ContainerState s, bool start, bool stop, bool freeze, bool thaw, bool exec, bool deleteUnforced)
    {
        Assert.Equal(start, s.CanStart());
        Assert.Equal(stop, s.CanStop());
        Assert.Equal(freeze, s.CanFreeze());
        Assert.Equal(thaw, s.CanThaw());
        Assert.Equal(exec, s.CanExec());
        Assert.Equal(deleteUnforced, s.CanDeleteUnforced());
        Assert.Equal(s != ContainerState.Damaged, s.CanUpdate());
    }
}

public class ReverterTests
{
    [Fact]
    public void AFailureUndoesNewestFirstAndAFailingUndoDoesNotStopTheOthers()
    {
        var undone = new List<string>();
        var e = Assert.Throws<InvalidOperationException>(void () =>
        {
            using var revert = new Reverter();
            revert.Add("a", () => undone.Add("a"));
            revert.Add("b", () => throw new IOException("stuck"));
            revert.Add("c", () => undone.Add("c"));
            throw new InvalidOperationException("step d failed");
        });
        Assert.Equal("step d failed", e.Message);
        Assert.Equal(["c", "a"], undone);
    }

    [Fact]
    public void SuccessKeepsWhatWasMade()
    {
        var undone = new List<string>();
        using (var revert = new Reverter())
        {
            revert.Add("a", () => undone.Add("a"));
            revert.Success();
        }
        Assert.Empty(undone);
    }
}

public class CpuAllocatorTests
{
    // Built directly: parsing checks the CPUs against this host's, and the allocator is told a host of four.
    private static ResourceLimits Set(string cpus) => new() { CpuSet = cpus };
    private static ResourceLimits Count(int n) => new() { CpuCount = n };

    [Fact]
    public void AnExplicitListIsKeptAndNoLimitPinsNothing()
    {
        var cpus = new CpuAllocator(4);
        Assert.Equal("1,3", cpus.Choose(Set("1,3"), ["1"]));
        Assert.Null(cpus.Choose(new ResourceLimits(), ["1"]));
    }

    [Fact]
    public void ACountTakesTheLeastUsedCpus()
    {
        var cpus = new CpuAllocator(4);
        Assert.Equal("0,1", cpus.Choose(Count(2), []));
        Assert.Equal("2,3", cpus.Choose(Count(2), ["0-1"]));
        Assert.Equal("1,3", cpus.Choose(Count(2), ["0-2", "0,2"]));
        // A pin to a CPU the host no longer has counts for none.
        Assert.Equal("0", cpus.Choose(Count(1), ["7"]));
    }
}

public class CpuSampleTests
{
    [Fact]
    public void TheRateIsOverTheIntervalBetweenTwoSamples()
    {
        var t = DateTimeOffset.UnixEpoch;
        var earlier = new CpuSample(t, 1_000_000_000);
        Assert.Equal(50, new CpuSample(t.AddSeconds(2), 2_000_000_000).PercentSince(earlier), 6);
        Assert.Equal(0, new CpuSample(t, 9_000_000_000).PercentSince(earlier));
        // A counter that went back (a new run) is no negative use.
        Assert.Equal(0, new CpuSample(t.AddSeconds(1), 0).PercentSince(earlier));
    }

    [Fact]
    public void NetworkCountersAreReadFromTheProcessNamespace()
    {
        var lo = Assert.Single(StatsSampler.NetworkOf(Environment.ProcessId), i => i.Name == "lo");
        Assert.True(lo.RxBytes >= 0 && lo.TxPackets >= 0);
        Assert.Empty(StatsSampler.NetworkOf(int.MaxValue));
    }
}
