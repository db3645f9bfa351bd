using SystemContainers.Engine.Migration;
using SystemContainers.Engine.Network;

namespace SystemContainers.Engine.Tests;

public class CheckpointCgroupsTests
{
    [Fact]
    public void RecordsTheTreeBelowTheCgroupAndMakesItAgainOwnedByTheContainersRoot()
    {
        using var tmp = new TempDir();
        string source = tmp.Combine("source"), images = tmp.Combine("images"), target = tmp.Combine("target");
        foreach (var d in new[] { "init.scope", "system.slice/counter.service", "user.slice" }) Directory.CreateDirectory(Path.Combine(source, d));
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(target);
        CheckpointCgroups.Save(source, images);
        CheckpointCgroups.Recreate(images, target, 1000000, 1000005);
        foreach (var d in new[] { "init.scope", "system.slice", "system.slice/counter.service", "user.slice" })
        {
            string made = Path.Combine(target, d);
            Assert.True(Directory.Exists(made), made);
            Assert.Equal((1000000u, 1000005u), Host.Owner(made));
        }
        // Made again over what exists: nothing changes, nothing fails.
        CheckpointCgroups.Recreate(images, target, 1000000, 1000005);
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("/sys/fs/cgroup/x")]
    [InlineData("a/../../b")]
    public void RefusesARecordNamingACgroupOutsideTheContainers(string relative)
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.Combine("cgroups.json"), System.Text.Json.JsonSerializer.Serialize(new[] { relative }));
        Directory.CreateDirectory(tmp.Combine("target"));
        var e = Assert.Throws<EngineException>(() => CheckpointCgroups.Recreate(tmp.Path, tmp.Combine("target"), 0, 0));
        Assert.Contains("outside the container's", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(tmp.Combine("target")));
    }
}

public class EmptyNetworkNamespaceTests
{
    [Fact]
    public void HoldsANewNamespaceWithOnlyLoopbackUp()
    {
        using var ns = NetworkNamespaceThread.CreateEmpty();
        string theirs = NetworkNamespaceThread.Run(ns, () => new FileInfo("/proc/thread-self/ns/net").LinkTarget!);
        Assert.NotEqual(Host.Namespace(Environment.ProcessId, "net"), theirs);
        // From outside, through the fd: ip sees one link, lo, up.
        var psi = new System.Diagnostics.ProcessStartInfo("nsenter", [$"--net=/proc/{Environment.ProcessId}/fd/{ns.Fd}", "--", "ip", "-o", "link", "show"])
        {
            RedirectStandardOutput = true,
        };
        using var ip = System.Diagnostics.Process.Start(psi)!;
        var lines = ip.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        ip.WaitForExit();
        Assert.Equal(0, ip.ExitCode);
        var lo = Assert.Single(lines);
        Assert.StartsWith("1: lo: <LOOPBACK,UP,", lo);
    }
}
