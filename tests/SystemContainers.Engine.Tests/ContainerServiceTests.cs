using SystemContainers.Engine.Containers;
using System.Text;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Stats;

namespace SystemContainers.Engine.Tests;

/// <summary>Root integration tests: real namespaces, cgroups, overlay and idmapped mounts.</summary>
[Collection("engine")]
public class ContainerServiceTests(EngineFixture fx)
{
    private static async Task<(int Code, string Out, string Err)> Run(ContainerService m, string name, params string[] command)
    {
        using var session = m.Exec(name, new ExecRequest(command));
        var o = await session.CollectAsync(default);
        return (o.ExitCode, Encoding.UTF8.GetString(o.Stdout), Encoding.UTF8.GetString(o.Stderr));
    }

    [Fact]
    public async Task BusyboxContainerIsIsolatedFromBothSides()
    {
        var m = fx.NewManager();
        m.Create("iso", "busybox", null);
        var view = await m.StartAsync("iso");
        int pid = view.Pid!.Value;

        Assert.Equal((0, "0\n", ""), await Run(m, "iso", "id", "-u"));
        Assert.Equal("iso\n", (await Run(m, "iso", "hostname")).Out);
        Assert.Equal("init\n", (await Run(m, "iso", "cat", "/proc/1/comm")).Out);
        var ps = (await Run(m, "iso", "ps", "-o", "pid")).Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(int.Parse).ToList();
        Assert.Contains(1, ps);
        Assert.DoesNotContain(Environment.ProcessId, ps);
        Assert.True(ps.Count < 5, $"container sees {ps.Count} processes");
        Assert.NotEqual(0, (await Run(m, "iso", "sh", "-c", "echo x > /proc/sys/kernel/hostname")).Code);
        var mknod = await Run(m, "iso", "mknod", "/tmp/sda", "b", "8", "0");
        Assert.NotEqual(0, mknod.Code);
        Assert.Contains("Operation not permitted", mknod.Err);
        // busybox mount says EPERM as "permission denied (are you root?)".
        // Container root may mount a tmpfs (systemd does) but not a file system only the host may mount.
        Assert.Equal(0, (await Run(m, "iso", "sh", "-c", "mkdir -p /tmp/own && mount -t tmpfs own-tmpfs /tmp/own")).Code);
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains("own-tmpfs"));
        var debugfs = await Run(m, "iso", "sh", "-c", "mkdir -p /tmp/dbg && mount -t debugfs dbg /tmp/dbg");
        Assert.NotEqual(0, debugfs.Code);
        Assert.Contains("permission denied", debugfs.Err);
        Assert.NotEqual(0, (await Run(m, "iso", "touch", "/sys/kernel/x")).Code);

        var status = File.ReadAllLines($"/proc/{pid}/status");
        var (rootUid, _) = Host.RootIds(pid);
        Assert.NotEqual(0u, rootUid);
        Assert.Contains(status, l => l.StartsWith("Uid:") && l.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1] == rootUid.ToString());
        foreach (var ns in new[] { "pid", "mnt", "net", "uts", "ipc", "user", "cgroup" })
            Assert.NotEqual(Host.Namespace(Environment.ProcessId, ns), Host.Namespace(pid, ns));
        var dirs = m.CgroupDirectories("iso");
        Assert.Equal(HostCgroups.Of(pid).Select(c => c.Directory).Order(), dirs.Order());
        string memory = HostCgroups.DirectoryOf(pid, "memory");
        Assert.Contains(pid.ToString(), File.ReadAllLines(Path.Combine(memory, "cgroup.procs")));

        var stopped = await m.StopAsync("iso", force: false, TimeSpan.FromSeconds(20));
        Assert.Equal(ContainerStatus.Stopped, stopped.Status);
        Assert.False(Directory.Exists($"/proc/{pid}"));
        Assert.All(dirs, d => Assert.False(Directory.Exists(d), d));
        // The lxcfs mount serves every container; it is not one of this container's.
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(fx.RunDir) && !l.Contains(m.Lxcfs.MountPoint + " "));
        await m.DeleteAsync("iso", force: false);
    }

    [LxcfsFact]
    public async Task LxcfsShowsTheMemoryLimitInsideAndTheLaunchPlanBindsOnlyWhatItProvides()
    {
        var m = fx.NewManager();
        Assert.Contains(m.Lxcfs.State.Source, new[] { "daemon", "system" });
        var (root, files) = m.Lxcfs.Views()!.Value;
        Assert.Equal(m.Lxcfs.State.Mount, root);
        Assert.Contains("proc/meminfo", files);
        Assert.All(files, f => Assert.Contains(f, Lxcfs.Files));
        m.Create("lxmem", "busybox", new Dictionary<string, string> { ["limits.memory"] = "96MiB" });
        var view = await m.StartAsync("lxmem");
        try
        {
            var meminfo = (await Run(m, "lxmem", "cat", "/proc/meminfo")).Out;
            Assert.Matches($@"(?m)^MemTotal:\s+{96 * 1024} kB$", meminfo);
            var mounts = File.ReadAllLines($"/proc/{view.Pid}/mountinfo").Select(l => l.Split(' ')).ToList();
            Assert.Contains(mounts, f => f[4] == "/proc/meminfo" && f[Array.IndexOf(f, "-") + 1] == "fuse.lxcfs");
        }
        finally { await m.DeleteAsync("lxmem", force: true); }
    }

    [Fact]
    public async Task ShiftedImageFallbackWorksWhereIdmapIsNotUsed()
    {
        var m = fx.NewManager(shiftIds: true);
        m.Create("shifted", "busybox", null);
        int pid = (await m.StartAsync("shifted")).Pid!.Value;
        Assert.Equal("0 0\n", (await Run(m, "shifted", "stat", "-c", "%u %g", "/bin/busybox")).Out);
        Assert.Equal(0, (await Run(m, "shifted", "touch", "/root/new")).Code);
        var (uid, gid) = Host.RootIds(pid);
        Assert.NotEqual(0u, uid);
        string shifted = fx.Images.RootfsOf(fx.Busybox) + $".shift-{uid}-{gid}";
        Assert.Equal((uid, gid), Host.Owner(Path.Combine(shifted, "bin", "busybox")));
        Assert.Equal((0u, 0u), Host.Owner(Path.Combine(fx.Images.RootfsOf(fx.Busybox), "bin", "busybox")));
        await m.DeleteAsync("shifted", force: true);
    }

    [Fact]
    public async Task PrivilegedContainerSharesTheHostUserNamespace()
    {
        var m = fx.NewManager();
        m.Create("priv", "busybox", new Dictionary<string, string> { ["security.privileged"] = "true" });
        var view = await m.StartAsync("priv");
        Assert.True(view.Privileged);
        Assert.Equal(Host.Namespace(Environment.ProcessId, "user"), Host.Namespace(view.Pid!.Value, "user"));
        Assert.NotEqual(Host.Namespace(Environment.ProcessId, "mnt"), Host.Namespace(view.Pid!.Value, "mnt"));
        Assert.Equal("0\n", (await Run(m, "priv", "id", "-u")).Out);
        await m.DeleteAsync("priv", force: true);
    }

    [Fact]
    public async Task ContainersFromOneImageDoNotShareFilesAndLeaveTheImageAlone()
    {
        var m = fx.NewManager();
        m.Create("one", "busybox", null);
        m.Create("two", "busybox", null);
        await m.StartAsync("one");
        await m.StartAsync("two");
        Assert.Equal(0, (await Run(m, "one", "sh", "-c", "echo secret > /etc/mine")).Code);
        Assert.NotEqual(0, (await Run(m, "two", "cat", "/etc/mine")).Code);
        Assert.False(File.Exists(Path.Combine(fx.Images.RootfsOf(fx.Busybox), "etc", "mine")));
        await m.DeleteAsync("one", force: true);
        await m.DeleteAsync("two", force: true);
    }

    [Fact]
    public async Task RefusesStateChangesThatMakeNoSense()
    {
        var m = fx.NewManager();
        m.Create("states", "busybox", null);
        Assert.Equal("NotRunning", Assert.Throws<EngineException>(() => m.Exec("states", new ExecRequest(["true"]))).Reason);
        Assert.Equal("NotRunning", (await Assert.ThrowsAsync<EngineException>(() => m.StopAsync("states", false, null))).Reason);
        await m.StartAsync("states");
        Assert.Equal("AlreadyRunning", (await Assert.ThrowsAsync<EngineException>(() => m.StartAsync("states"))).Reason);
        Assert.Equal("ContainerRunning", (await Assert.ThrowsAsync<EngineException>(() => m.DeleteAsync("states", false))).Reason);
        Assert.Equal("ContainerExists", Assert.Throws<EngineException>(() => m.Create("states", "busybox", null)).Reason);
        var (code, _, err) = await Run(m, "states", "/no/such/program");
        Assert.Equal(127, code);
        Assert.Contains("ENOENT", err);
        await m.DeleteAsync("states", force: true);
        Assert.Equal("ContainerNotFound", Assert.Throws<EngineException>(() => m.Get("states")).Reason);
    }

    [Fact]
    public async Task AFailedStartLeavesNothingBehind()
    {
        var m = fx.NewManager();
        m.Create("broken", "busybox", null);
        // Make init unexecutable in this container's upper layer only.
        string upperInit = Path.Combine(fx.StateDir, "containers", "broken", "fs", "upper", "sbin");
        Directory.CreateDirectory(upperInit);
        File.WriteAllText(Path.Combine(upperInit, "init"), "not a program");
        var e = await Assert.ThrowsAsync<EngineException>(() => m.StartAsync("broken"));
        Assert.Equal("StartFailed", e.Reason);
        Assert.Contains("cannot exec /sbin/init: EACCES", e.Message);
        Assert.Equal(ContainerStatus.Stopped, m.Get("broken").Status);
        // In every hierarchy, the start made the engine's group, and left no cgroup of the container in it.
        var wouldBe = CgroupDriverFactory.Detect(fx.Group).Open("broken").Directories;
        Assert.Equal(HostCgroups.Of(Environment.ProcessId).Count, wouldBe.Count);
        foreach (var dir in wouldBe)
        {
            Assert.True(Directory.Exists(Path.GetDirectoryName(dir)), Path.GetDirectoryName(dir));
            Assert.False(Directory.Exists(dir), dir);
        }
        await m.DeleteAsync("broken", force: false);
    }

    [Fact]
    public async Task ARestartedEngineAdoptsRunningContainers()
    {
        var first = fx.NewManager();
        first.Create("adopt", "busybox", null);
        int pid = (await first.StartAsync("adopt")).Pid!.Value;
        first.Dispose();

        var second = fx.NewManager();
        var view = second.Get("adopt");
        Assert.Equal(ContainerStatus.Running, view.Status);
        Assert.Equal(pid, view.Pid);
        Assert.Equal("adopt\n", (await Run(second, "adopt", "hostname")).Out);
        await second.StopAsync("adopt", force: true, null);
        Assert.False(Directory.Exists($"/proc/{pid}"));
        await second.DeleteAsync("adopt", force: false);
    }

    [Fact]
    public async Task ASpecIsParsedOnceAndReplacedWithItsRecord()
    {
        var m = fx.NewManager();
        m.Create("spec", "busybox", new Dictionary<string, string> { ["limits.memory"] = "64MiB" });
        var c = m.Find("spec");
        var held = c.Spec;
        Assert.Same(held, c.Spec);
        Assert.Equal(c.Record.Config, held.Raw);
        await m.UpdateConfigAsync("spec", new Dictionary<string, string?> { ["limits.memory"] = "80MiB" });
        Assert.NotSame(held, c.Spec);
        Assert.Same(c.Spec, c.Spec);
        Assert.Equal(80L << 20, c.Spec.Limits.MemoryBytes);
        Assert.Equal(c.Record.Config, c.Spec.Raw);
        await m.DeleteAsync("spec", force: false);
    }

    [Fact]
    public async Task ACreateThatFailsPartWayUndoesWhatItMade()
    {
        var m = fx.NewManager();
        string containers = Path.Combine(fx.StateDir, "containers");
        // The NIC's network is refused after the staging directory exists and the name is claimed.
        var e = Assert.Throws<EngineException>(() =>
            m.Create("undo", "busybox", new Dictionary<string, string> { ["nic.eth0.type"] = "bridged", ["nic.eth0.network"] = "nosuchnet" }));
        Assert.Equal(FailureKind.NotFound, e.Kind);
        Assert.DoesNotContain(m.List(), v => v.Name == "undo");
        Assert.Empty(Directory.GetDirectories(containers, ".new-undo-*"));
        Assert.False(Directory.Exists(Path.Combine(containers, "undo")));
        m.Create("undo", "busybox", null);
        Assert.Equal(ContainerStatus.Stopped, m.Get("undo").Status);
        await m.DeleteAsync("undo", force: false);
    }

    [Fact]
    public async Task AnExecWhileAStopWaitsIsRefusedAsBusyAndStateGuardsKeepTheirReasons()
    {
        var m = fx.NewManager();
        m.Create("busy", "busybox", null);
        var notRunning = Assert.Throws<EngineException>(() => m.Exec("busy", new ExecRequest(["true"])));
        Assert.Equal("NotRunning", notRunning.Reason);
        await m.StartAsync("busy");
        Assert.Equal("AlreadyRunning", (await Assert.ThrowsAsync<EngineException>(() => m.StartAsync("busy"))).Reason);
        Assert.Equal("NotFrozen", (await Assert.ThrowsAsync<EngineException>(() => m.ThawAsync("busy"))).Reason);
        await m.FreezeAsync("busy");
        Assert.Equal("AlreadyFrozen", (await Assert.ThrowsAsync<EngineException>(() => m.FreezeAsync("busy"))).Reason);
        Assert.Equal("Frozen", Assert.Throws<EngineException>(() => m.Exec("busy", new ExecRequest(["true"]))).Reason);
        await m.ThawAsync("busy");
        var c = m.Find("busy");
        c.Stopping = true;
        Assert.Equal(ContainerState.Stopping, c.State);
        Assert.Equal(ContainerStatus.Running, m.Get("busy").Status);
        var busy = Assert.Throws<EngineException>(() => m.Exec("busy", new ExecRequest(["true"])));
        Assert.Equal("ContainerBusy", busy.Reason);
        Assert.Equal(FailureKind.Conflict, busy.Kind);
        c.Stopping = false;
        Assert.Equal(0, (await Run(m, "busy", "true")).Code);
        Assert.Equal("ContainerRunning", (await Assert.ThrowsAsync<EngineException>(() => m.DeleteAsync("busy", force: false))).Reason);
        await m.StopAsync("busy", force: true, null);
        Assert.Equal(ContainerState.Stopped, c.State);
        Assert.Equal("NotRunning", (await Assert.ThrowsAsync<EngineException>(() => m.StopAsync("busy", force: true, null))).Reason);
        await m.DeleteAsync("busy", force: false);
    }

    [Fact]
    public async Task StatsCountersOnlyGrowAndTheRateIsOverTheLastSample()
    {
        var m = fx.NewManager();
        m.Create("stats", "busybox", null);
        Assert.Equal(ContainerStatus.Stopped, m.Stats("stats").Status);
        await m.StartAsync("stats");
        var first = m.Stats("stats");
        Assert.Equal(0, (await Run(m, "stats", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")).Code);
        var second = m.Stats("stats");
        Assert.True(second.Cgroup!.CpuUsageNanoseconds > first.Cgroup!.CpuUsageNanoseconds);
        Assert.Equal(second.SampledAt - first.SampledAt, second.CpuInterval);
        var expected = new CpuSample(second.SampledAt, second.Cgroup.CpuUsageNanoseconds)
            .PercentSince(new CpuSample(first.SampledAt, first.Cgroup.CpuUsageNanoseconds));
        Assert.Equal(expected, second.CpuPercent, 6);
        Assert.Contains(second.Network, i => i.Name == "lo");
        await m.StopAsync("stats", force: true, null);
        await m.DeleteAsync("stats", force: false);
    }
}
