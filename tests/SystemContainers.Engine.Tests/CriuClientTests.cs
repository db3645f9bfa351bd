using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Migration;

namespace SystemContainers.Engine.Tests;

/// <summary>
/// The real criu (the one build.ps1 installs, or the host's) driven over `criu swrk`: its answers,
/// and a dump and restore of a process tree in its own pid, mount, UTS and IPC namespaces.
/// </summary>
public sealed class CriuClientTests
{
    /// <summary>The criu the build passes to test daemons, else the newest one build.ps1 unpacked, else the packaged one.</summary>
    private static string CriuCommand() =>
        Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_CRIU") is { Length: > 0 } env ? env
        : Directory.Exists("/var/cache/systemcontainers/criu")
            ? Directory.EnumerateDirectories("/var/cache/systemcontainers/criu").Where(d => !Path.GetFileName(d).StartsWith('.'))
                .Select(d => Path.Combine(d, "criu")).Where(File.Exists).OrderDescending(StringComparer.Ordinal).FirstOrDefault() ?? EngineOptions.DefaultCriuPath
            : EngineOptions.DefaultCriuPath;

    [Fact]
    public void VersionIsAtLeastTheMinimum()
    {
        var version = new CriuClient(CriuCommand()).Version();
        Assert.True(version.IsAtLeast(new CriuVersion(4, 2, 0)), $"criu {version}");
        Assert.True(version.IsAtLeast(CriuVersion.Minimum), $"criu {version}");
    }

    [Theory]
    [InlineData(3, 17, 1, false)]
    [InlineData(4, 1, 1, false)]
    [InlineData(4, 2, 0, false)]
    [InlineData(4, 2, 1, true)]
    [InlineData(4, 3, 0, true)]
    [InlineData(5, 0, 0, true)]
    public void OnlyCriu421AndLaterAreUsable(int major, int minor, int sublevel, bool usable) =>
        Assert.Equal(usable, new CriuVersion(major, minor, sublevel).IsAtLeast(CriuVersion.Minimum));

    [Fact]
    public void CheckAndFeaturesAnswer()
    {
        var client = new CriuClient(CriuCommand());
        client.Check();
        var features = client.Features();
        // Lazy pages need userfaultfd, whose sysctl exists exactly where the kernel has it.
        Assert.Equal(File.Exists("/proc/sys/vm/unprivileged_userfaultfd"), features.LazyPages);
    }

    [Fact]
    public void MissingBinaryNamesWhatIsNeeded()
    {
        var e = Assert.Throws<EngineException>(() => new CriuClient("/nonexistent/criu").Version());
        Assert.Equal("CriuMissing", e.Reason);
        Assert.Contains("/nonexistent/criu does not exist", e.Message);
        Assert.Contains(">= 4.2.1", e.Message);
    }

    [Fact]
    public void RestoreFromAnEmptyImagesDirFailsWithTheLogPath()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<EngineException>(() => new CriuClient(CriuCommand()).Restore(new CriuRestoreOptions { ImagesDir = dir.Path, Root = "/" }));
        Assert.Equal("CriuFailed", e.Reason);
        Assert.Contains($"criu restore from {dir.Path} failed", e.Message);
        Assert.Contains($"see {dir.Combine("restore.log")}: Error (criu/", e.Message);
    }

    [Fact]
    public void MissingImagesDirFailsWithItsPath()
    {
        var e = Assert.Throws<EngineException>(() => new CriuClient(CriuCommand()).Dump(new CriuDumpOptions { Pid = Environment.ProcessId, ImagesDir = "/nonexistent/images" }));
        Assert.Contains($"criu dump of pid {Environment.ProcessId} failed: cannot open /nonexistent/images: ENOENT", e.Message);
    }

    /// <summary>
    /// With externalNetwork the tree has its own network namespace, which criu leaves to the engine
    /// (as the daemon will keep a container's): named external at dump, given back by fd at restore.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DumpAndRestoreKeepTheCounterGoing(bool externalNetwork)
    {
        // Not under /tmp: where /tmp is a tmpfs, criu would copy the whole tmpfs as the root mount's content.
        string dir = Directory.CreateDirectory($"/var/tmp/sc-criu-{Guid.NewGuid():n}").FullName;
        string rootfs = Path.Combine(dir, "rootfs"), images = Path.Combine(dir, "images"), counter = Path.Combine(rootfs, "tmp/counter");
        int unshare = 0, init = 0, restored = 0;
        try
        {
            MakeBusyboxRoot(rootfs);
            Directory.CreateDirectory(images);
            (unshare, init) = StartCounter(rootfs, externalNetwork);
            Wait(() => ReadCounter(counter) >= 15, "the counter to reach 15");
            Assert.Equal("1", NsPid(init));
            string netns = Host.Namespace(init, "net");
            // Held open, the namespace outlives the dumped tree, as the daemon keeps a container's.
            using var netnsFd = Sys.Open($"/proc/{init}/ns/net", Libc.O_RDONLY);
            var external = externalNetwork ? new[] { $"net[{netns[5..^1]}]:extNetNs" } : [];
            var client = new CriuClient(CriuCommand());
            var steps = new List<string>();
            client.Dump(new CriuDumpOptions { Pid = init, ImagesDir = images, Root = rootfs, External = external }, (step, _) => steps.Add(step));
            Assert.Contains("post-dump", steps);
            // The dump ended the tree: its init is gone and unshare, which waited for it, exits.
            Sys.WaitPid(unshare);
            unshare = 0;
            Assert.False(Directory.Exists($"/proc/{init}"));
            init = 0;
            int atDump = ReadCounter(counter);
            Thread.Sleep(300);
            Assert.Equal(atDump, ReadCounter(counter));

            steps.Clear();
            var inherit = externalNetwork ? new[] { ("extNetNs", netnsFd) } : [];
            restored = client.Restore(new CriuRestoreOptions { ImagesDir = images, Root = rootfs, InheritFds = inherit }, (step, _) => steps.Add(step));
            Assert.Contains("post-restore", steps);
            Wait(() => ReadCounter(counter) > atDump + 3, $"the counter to go on from {atDump}");
            // Restarted, it would count from 1 again; restored, it goes on from where it was dumped.
            Assert.InRange(ReadCounter(counter), atDump + 1, atDump + 100);
            Assert.Equal("1", NsPid(restored));
            foreach (string ns in new[] { "pid", "mnt", "uts", "ipc" })
                Assert.NotEqual(Host.Namespace(Environment.ProcessId, ns), Host.Namespace(restored, ns));
            if (externalNetwork) Assert.Equal(netns, Host.Namespace(restored, "net"));
            else Assert.Equal(Host.Namespace(Environment.ProcessId, "net"), Host.Namespace(restored, "net"));
        }
        finally
        {
            // Sibling restore made the restored init our child; killing a pid namespace's init ends the namespace.
            foreach (int pid in new[] { restored, init, unshare }.Where(p => p > 0))
                Libc.kill(pid, 9);
            if (restored > 0) Sys.WaitPid(restored);
            if (unshare > 0) Sys.WaitPid(unshare);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void MakeBusyboxRoot(string rootfs)
    {
        foreach (string d in new[] { "bin", "dev", "proc", "tmp", "old" }) Directory.CreateDirectory(Path.Combine(rootfs, d));
        File.Copy("/bin/busybox", Path.Combine(rootfs, "bin/busybox"));
        foreach (string applet in new[] { "sh", "sleep", "mount", "umount", "hostname", "setsid" })
            File.CreateSymbolicLink(Path.Combine(rootfs, "bin", applet), "busybox");
        var (code, error) = Sys.Run("/bin/mknod", ["mknod", "-m", "666", Path.Combine(rootfs, "dev/null"), "c", "1", "3"], "");
        Assert.True(code == 0, $"mknod: {error}");
    }

    /// <summary>
    /// unshare's child is the tree's init: pivoted into the rootfs, its stdio on files inside it and
    /// every fd it inherited without close-on-exec closed (a host fd would be external to the dump),
    /// counting into /tmp/counter every 100 ms.
    /// </summary>
    private static (int Unshare, int Init) StartCounter(string rootfs, bool ownNetwork)
    {
        const string script = """
            for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null
            mount --make-rprivate / && mount --bind "$0" "$0" && cd "$0" && pivot_root . old &&
            exec /bin/sh -c 'umount -l /old; mount -t proc proc /proc; hostname ct1; exec </dev/null >/tmp/out 2>&1;
              exec setsid sh -c "i=0; while true; do i=\$((i+1)); echo \$i > /tmp/counter; sleep 0.1; done"'
            """;
        int unshare;
        using (var devnull = Sys.Open("/dev/null", Libc.O_RDWR))
            unshare = Sys.Spawn("/usr/bin/unshare", ["unshare", "--pid", "--fork", "--uts", "--ipc", "--mount", .. (ownNetwork ? new[] { "--net" } : []), "/bin/bash", "-c", script, rootfs],
                [(devnull, 0), (devnull, 1), (devnull, 2)], ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
        int init = 0;
        Wait(() => int.TryParse(ReadOrEmpty($"/proc/{unshare}/task/{unshare}/children").Trim(), out init), "unshare to fork the init");
        return (unshare, init);
    }

    private static string NsPid(int pid) =>
        File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("NSpid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[^1];

    private static int ReadCounter(string path) => int.TryParse(ReadOrEmpty(path).Trim(), out int n) ? n : 0;

    private static string ReadOrEmpty(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
    }

    private static void Wait(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }
}
