using SystemContainers.Engine.Host;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Tests;

public class ResourceLimitsTests
{
    private static ResourceLimits Parse(params (string Key, string Value)[] kv) =>
        ResourceLimits.Parse(kv.ToDictionary(x => x.Key, x => x.Value), hostCpus: 4, hostMemory: 8L << 30);

    [Theory]
    [InlineData("536870912", 536870912L)]
    [InlineData("512MiB", 512L << 20)]
    [InlineData("512M", 512L << 20)]
    [InlineData("2GB", 2_000_000_000L)]
    [InlineData("1.5GiB", 3L << 29)]
    [InlineData("50%", 4L << 30)]
    public void ParsesMemory(string value, long bytes) => Assert.Equal(bytes, Parse(("limits.memory", value)).MemoryBytes);

    [Fact]
    public void ParsesCpuCountsListsAllowancesAndPriority()
    {
        Assert.Equal(2, Parse(("limits.cpu", "2")).CpuCount);
        Assert.Equal("0-1,3", Parse(("limits.cpu", "0-1,3")).CpuSet);
        var quota = Parse(("limits.cpu.allowance", "25ms/100ms"));
        Assert.Equal((25_000L, 100_000L), (quota.CpuQuotaMicroseconds!.Value, quota.CpuPeriodMicroseconds));
        Assert.Equal(512, Parse(("limits.cpu.allowance", "50%")).CpuShares);
        Assert.Equal(1024, Parse(("limits.cpu.priority", "5")).CpuShares);
        Assert.Null(Parse().CpuShares);
    }

    [Fact]
    public void ParsesTheRest()
    {
        var l = Parse(("limits.processes", "50"), ("limits.memory.swap", "false"), ("limits.memory.enforce", "soft"), ("limits.disk.priority", "10"));
        Assert.Equal(50, l.ProcessesMax);
        Assert.False(l.SwapAllowed);
        Assert.True(l.MemorySoft);
        Assert.Equal(1000, l.IoWeight);
        Assert.Equal(10L << 30, Parse(("limits.disk", "10GiB")).DiskBytes);
        Assert.Equal(500_000_000, Parse(("limits.disk", "500MB")).DiskBytes);
        Assert.Null(l.DiskBytes);
    }

    [Theory]
    [InlineData("limits.memory", "lots")]
    [InlineData("limits.memory", "1")]
    [InlineData("limits.memory", "0%")]
    [InlineData("limits.cpu", "0-999")]
    [InlineData("limits.cpu", "5")]
    [InlineData("limits.cpu", "0")]
    [InlineData("limits.cpu", "2-1")]
    [InlineData("limits.cpu.allowance", "150%")]
    [InlineData("limits.cpu.allowance", "25ms")]
    [InlineData("limits.cpu.allowance", "0ms/100ms")]
    [InlineData("limits.processes", "-5")]
    [InlineData("limits.processes", "0")]
    [InlineData("limits.memory.enforce", "sometimes")]
    [InlineData("limits.disk.priority", "11")]
    [InlineData("limits.disk", "15MiB")]
    [InlineData("limits.disk", "2EiB")]
    [InlineData("limits.disk", "50%")]
    [InlineData("limits.cpu.priority", "x")]
    public void RefusesBadValuesNamingTheKey(string key, string value)
    {
        var e = Assert.Throws<EngineException>(() => Parse((key, value)));
        Assert.Equal("InvalidConfigValue", e.Reason);
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains($"'{value}'", e.Message);
    }
}

/// <summary>Every limit and statistic of the v2 driver, against a cgroup2-shaped tree.</summary>
public class CgroupV2LimitsTests
{
    private static (TempDir Root, CgroupV2Driver Driver, ContainerCgroup Cgroup, string Dir) Fixture()
    {
        var root = new TempDir();
        string dir = root.Combine("own", "grp", "c1");
        Directory.CreateDirectory(dir);
        foreach (var f in new[] { "cgroup.controllers", "cgroup.subtree_control", "cgroup.procs", "cgroup.threads", "cgroup.freeze", "cpu.max",
                     "cpu.weight", "cpuset.cpus", "memory.max", "memory.high", "memory.swap.max", "pids.max", "io.weight" })
            File.WriteAllText(Path.Combine(dir, f), "");
        var driver = new CgroupV2Driver(root.Path, new PlainSubtree(root.Path, "/own", "grp", enableControllers: false));
        return (root, driver, driver.Open("c1"), dir);
    }

    private static string Read(string dir, string file) => File.ReadAllText(Path.Combine(dir, file));

    [Fact]
    public void WritesEveryLimitToItsFile()
    {
        var (root, driver, cg, dir) = Fixture();
        using (root)
        {
            var limits = ResourceLimits.Parse(new Dictionary<string, string>
            {
                ["limits.cpu.allowance"] = "25ms/100ms", ["limits.cpu.priority"] = "10", ["limits.memory"] = "512MiB",
                ["limits.memory.swap"] = "false", ["limits.processes"] = "50", ["limits.disk.priority"] = "10",
            }, 4, 8L << 30);
            driver.Apply(cg, limits, "0-1");
            Assert.Equal("25000 100000", Read(dir, "cpu.max"));
            // cpu.weight 100 and cpu.shares 1024 are the same scheduler weight (each version's default): 1877 shares are weight 183.
            Assert.Equal("183", Read(dir, "cpu.weight"));
            Assert.Equal("0-1", Read(dir, "cpuset.cpus"));
            Assert.Equal((512L << 20).ToString(), Read(dir, "memory.max"));
            Assert.Equal("max", Read(dir, "memory.high"));
            Assert.Equal("0", Read(dir, "memory.swap.max"));
            Assert.Equal("50", Read(dir, "pids.max"));
            Assert.Equal("default 200", Read(dir, "io.weight"));

            var soft = ResourceLimits.Parse(new Dictionary<string, string> { ["limits.memory"] = "1GiB", ["limits.memory.enforce"] = "soft" }, 4, 8L << 30);
            driver.Apply(cg, soft, null);
            Assert.Equal("max", Read(dir, "memory.max"));
            Assert.Equal((1L << 30).ToString(), Read(dir, "memory.high"));

            // Priority 5 is v1's default 1024 shares, so v2's default weight.
            driver.Apply(cg, ResourceLimits.Parse(new Dictionary<string, string> { ["limits.cpu.priority"] = "5" }, 4, 8L << 30), null);
            Assert.Equal("100", Read(dir, "cpu.weight"));

            driver.Apply(cg, ResourceLimits.None, null);
            Assert.Equal("max 100000", Read(dir, "cpu.max"));
            Assert.Equal("100", Read(dir, "cpu.weight"));
            Assert.Equal("", Read(dir, "cpuset.cpus"));
            Assert.Equal("max", Read(dir, "memory.max"));
            Assert.Equal("max", Read(dir, "memory.swap.max"));
            Assert.Equal("max", Read(dir, "pids.max"));
            Assert.Equal("default 100", Read(dir, "io.weight"));
        }
    }

    [Theory]
    [InlineData("limits.memory", "64MiB", "memory.max")]
    [InlineData("limits.cpu.allowance", "25ms/100ms", "cpu.max")]
    [InlineData("limits.processes", "10", "pids.max")]
    [InlineData("limits.disk.priority", "5", "io.weight")]
    [InlineData("limits.memory.swap", "false", "memory.swap.max")]
    public void ALimitWhoseControllerIsMissingIsAnErrorNamingTheKeyAndFile(string key, string value, string file)
    {
        var (root, driver, cg, dir) = Fixture();
        using (root)
        {
            File.Delete(Path.Combine(dir, file));
            var limits = ResourceLimits.Parse(new Dictionary<string, string> { [key] = value }, 4, 8L << 30);
            var e = Assert.Throws<EngineException>(() => driver.Apply(cg, limits, null));
            Assert.Equal("LimitUnsupported", e.Reason);
            Assert.Contains(key, e.Message);
            Assert.Contains(Path.Combine(dir, file), e.Message);
            // Without the limit the missing controller is no error: nothing is asked of it.
            driver.Apply(cg, ResourceLimits.None, null);
        }
    }

    [Fact]
    public void ReadsEveryStatisticFromItsFile()
    {
        var (root, driver, cg, dir) = Fixture();
        using (root)
        {
            File.WriteAllText(Path.Combine(dir, "cpu.stat"), "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\n");
            File.WriteAllText(Path.Combine(dir, "memory.current"), "1048576\n");
            File.WriteAllText(Path.Combine(dir, "memory.peak"), "4194304\n");
            File.WriteAllText(Path.Combine(dir, "memory.max"), "33554432\n");
            File.WriteAllText(Path.Combine(dir, "memory.stat"), "anon 100\nfile 8192\nfile_mapped 0\n");
            File.WriteAllText(Path.Combine(dir, "memory.swap.current"), "4096\n");
            File.WriteAllText(Path.Combine(dir, "memory.events"), "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n");
            File.WriteAllText(Path.Combine(dir, "pids.current"), "3\n");
            File.WriteAllText(Path.Combine(dir, "pids.max"), "max\n");
            File.WriteAllText(Path.Combine(dir, "cgroup.events"), "populated 1\nfrozen 0\n");
            var s = driver.ReadStats(cg);
            Assert.Equal(new CgroupStats(2_500_000, 2_000_000, 500_000, 1 << 20, 4 << 20, 32 << 20, 8192, 4096, 7, 1, 3, null, false), s);
        }
    }

    [Fact]
    public async Task FreezesThroughCgroupFreezeAndWaitsForTheEvent()
    {
        var (root, driver, cg, dir) = Fixture();
        using (root)
        {
            string events = Path.Combine(dir, "cgroup.events");
            foreach (var (want, before, after) in new[] { ("1", "frozen 0", "frozen 1"), ("0", "frozen 1", "frozen 0") })
            {
                File.WriteAllText(events, $"populated 1\n{before}\n");
                var setting = Task.Run(() => driver.SetFrozen(cg, want == "1"));
                SpinWait.SpinUntil(() => Read(dir, "cgroup.freeze") == want, TimeSpan.FromSeconds(10));
                Assert.Equal(want, Read(dir, "cgroup.freeze"));
                // Written but not yet confirmed by the kernel's event: the driver must still be waiting.
                Assert.NotSame(setting, await Task.WhenAny(setting, Task.Delay(300)));
                File.WriteAllText(events, $"populated 1\n{after}\n");
                await setting.WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
    }
}

public partial class HostLimitsTests
{
    [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
    private static partial int inotify_init1(int flags);

    [System.Runtime.InteropServices.LibraryImport("libc")]
    private static partial int close(int fd);

    [Fact]
    public void CountsTheInotifyInstancesAProcessHoldsAndThoseChargedToRoot()
    {
        const int OCloexec = 0x80000;
        int before = HostLimits.InotifyInstancesOf("/proc/self");
        int a = inotify_init1(OCloexec), b = inotify_init1(OCloexec);
        try
        {
            Assert.True(a >= 0 && b >= 0);
            Assert.Equal(before + 2, HostLimits.InotifyInstancesOf("/proc/self"));
            // The tests run as root: this process's instances are among root's.
            Assert.True(HostLimits.RootInotifyInstances() >= before + 2);
        }
        finally
        {
            close(a);
            close(b);
        }
        Assert.Equal(before, HostLimits.InotifyInstancesOf("/proc/self"));
    }

    [Fact]
    public void NamesTheSysctlAndTheValueNeededWhenAStartWouldCrossIt()
    {
        var e = HostLimits.Refusal("web", "fs.inotify.max_user_instances", 128, 125, 10, "root and its containers hold 125 inotify instances on this host");
        Assert.Equal("HostLimitReached", e.Reason);
        Assert.Contains("cannot start container 'web': fs.inotify.max_user_instances is 128", e.Message);
        Assert.Contains("sysctl -w fs.inotify.max_user_instances=135", e.Message);
        Assert.Null(HostLimits.KeysOf(int.MaxValue));
    }

    [Fact]
    public void LeavesAStartOfAContainerThatIsNotSystemdAlone()
    {
        HostLimits.CheckStart("bb", Images.InitKinds.Busybox, 1_000_000, sharedMap: true);
    }
}
