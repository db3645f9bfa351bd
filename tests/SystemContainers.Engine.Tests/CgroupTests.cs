using SystemContainers.Engine.Cgroups;

namespace SystemContainers.Engine.Tests;

/// <summary>
/// The v2 driver against a directory tree shaped like cgroup2: the kernel's interface files
/// are pre-created, as mkdir on cgroupfs would make them.
/// </summary>
public class CgroupV2DriverTests
{
    private static void MakeCgroup(string dir, string controllers)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "cgroup.controllers"), controllers + "\n");
        foreach (var f in new[] { "cgroup.subtree_control", "cgroup.procs", "cgroup.threads", "cgroup.freeze" })
            File.WriteAllText(Path.Combine(dir, f), "");
    }

    [Fact]
    public void CreatesDelegatedCgroupInItsSubtreeWithControllersEnabled()
    {
        using var root = new TempDir();
        MakeCgroup(root.Path, "cpuset cpu io memory hugetlb pids rdma misc");
        MakeCgroup(root.Combine("grp"), "cpuset cpu io memory hugetlb pids rdma misc");
        MakeCgroup(root.Combine("grp", "web"), "cpuset cpu io memory hugetlb pids rdma misc");
        var driver = new CgroupV2Driver(root.Path, new PlainSubtree(root.Path, "/", "grp", enableControllers: true));

        var cg = driver.Create("web", 1_000_000, 1_000_000);

        string dir = root.Combine("grp", "web");
        Assert.Equal([dir], cg.Directories);
        Assert.Equal("+cpuset +cpu +io +memory +pids", File.ReadAllText(root.Combine("cgroup.subtree_control")));
        Assert.Equal("+cpuset +cpu +io +memory +pids", File.ReadAllText(root.Combine("grp", "cgroup.subtree_control")));
        Assert.Empty(cg.Join.TaskFiles);
        Assert.Equal(dir, cg.Join.Unified);
        foreach (var path in new[] { dir, Path.Combine(dir, "cgroup.procs"), Path.Combine(dir, "cgroup.subtree_control"), Path.Combine(dir, "cgroup.threads") })
        {
            Assert.Equal((1_000_000u, 1_000_000u), Host.Owner(path));
        }
    }

    [Fact]
    public void RemoveDeletesSubCgroupsBottomUp()
    {
        using var root = new TempDir();
        MakeCgroup(root.Combine("own", "grp", "c1", "init.scope"), "");
        MakeCgroup(root.Combine("own", "grp", "c1", "system.slice", "dbus.service"), "");
        var driver = new CgroupV2Driver(root.Path, new PlainSubtree(root.Path, "/own", "grp", enableControllers: false));
        // Interface files are not removable on cgroupfs (rmdir takes them); here they must go first.
        foreach (var f in Directory.GetFiles(root.Combine("own", "grp", "c1"), "*", SearchOption.AllDirectories)) File.Delete(f);
        driver.Remove("c1");
        Assert.False(Directory.Exists(root.Combine("own", "grp", "c1")));
        driver.ReleaseGroup();
        Assert.False(Directory.Exists(root.Combine("own", "grp")));
    }

    [Fact]
    public void ReleaseGroupKeepsAGroupThatStillHoldsContainers()
    {
        using var root = new TempDir();
        Directory.CreateDirectory(root.Combine("own", "grp", "running"));
        new CgroupV2Driver(root.Path, new PlainSubtree(root.Path, "/own", "grp", enableControllers: false)).ReleaseGroup();
        Assert.True(Directory.Exists(root.Combine("own", "grp", "running")));
    }
}

/// <summary>
/// The driver this host gets, for real: v1 where the host mounts cgroup v1 controllers (and, hybrid, a
/// controller-less cgroup2), v2 on a pure cgroup2 host; each fact says why it does not apply on the other.
/// </summary>
public class HostCgroupDriverTests
{
    [CgroupV1Fact]
    public void CreatesOneCgroupPerHierarchyUnderTheOwnCgroupAndRemovesThem()
    {
        string group = $"sc-test-{Guid.NewGuid():N}"[..20];
        var driver = CgroupDriverFactory.Detect(group);
        Assert.Equal("v1", driver.Version);
        var own = HostCgroups.Of(Environment.ProcessId);
        var cg = driver.Create("c1", 1_000_000, 1_000_000);
        try
        {
            foreach (var m in own)
            {
                string dir = Path.Join(m.Directory, group, "c1");
                Assert.Contains(dir, cg.Directories);
                Assert.True(Directory.Exists(dir), dir);
            }
            Assert.Equal(own.Count, cg.Directories.Count);
            string cpuset = Path.Join(own.Single(m => m.Controllers.Split(',').Contains("cpuset")).Directory, group, "c1");
            Assert.NotEqual("", File.ReadAllText(Path.Combine(cpuset, "cpuset.cpus")).Trim());
            // systemd inside manages the cgroup2 tree, so that one is delegated to the container's root.
            string? unified = own.SingleOrDefault(m => m.Controllers == "") is { } cgroup2 ? Path.Join(cgroup2.Directory, group, "c1") : null;
            Assert.Equal(unified, cg.Join.Unified);
            Assert.Equal(cg.Directories.Where(d => d != unified).Select(d => Path.Combine(d, "tasks")), cg.Join.TaskFiles);
            if (unified is not null)
            {
                Assert.Equal((1_000_000u, 1_000_000u), Host.Owner(unified));
                Assert.Equal((1_000_000u, 1_000_000u), Host.Owner(Path.Combine(unified, "cgroup.procs")));
            }
        }
        finally
        {
            driver.Remove("c1");
            driver.ReleaseGroup();
        }
        Assert.All(cg.Directories, d => Assert.False(Directory.Exists(d), d));
        Assert.All(cg.Directories, d => Assert.False(Directory.Exists(Path.GetDirectoryName(d)), Path.GetDirectoryName(d)));
    }

    [CgroupV2Fact]
    public void CreatesADelegatedLeafWithTheControllersInAnOwnSubtreeAndRemovesIt()
    {
        string group = $"sc-test-{Guid.NewGuid():N}"[..20];
        var driver = CgroupDriverFactory.Detect(group);
        Assert.Equal("v2", driver.Version);
        var cg = driver.Create("c1", 1_000_000, 1_000_000);
        string dir = Assert.Single(cg.Directories);
        try
        {
            Assert.True(Directory.Exists(dir), dir);
            Assert.Equal(dir, cg.Join.Unified);
            Assert.Empty(cg.Join.TaskFiles);
            string parent = Path.GetDirectoryName(dir)!;
            Assert.Contains(Path.GetFileName(parent), new[] { group, group + ".scope" });
            // The controllers the host offers and a limit needs are enabled for the container ...
            var offered = Words(Path.Combine(HostCgroups.Cgroup2Mount!, "cgroup.controllers"));
            var enabled = Words(Path.Combine(dir, "cgroup.controllers"));
            Assert.All(CgroupSubtree.WantedControllers.Where(offered.Contains), c => Assert.Contains(c, enabled));
            // ... which the kernel allows only where the group itself holds no process (no internal processes).
            Assert.Empty(File.ReadAllLines(Path.Combine(parent, "cgroup.procs")));
            Assert.Equal((1_000_000u, 1_000_000u), Host.Owner(dir));
            Assert.Equal((1_000_000u, 1_000_000u), Host.Owner(Path.Combine(dir, "cgroup.procs")));
        }
        finally
        {
            driver.Remove("c1");
            driver.ReleaseGroup();
        }
        Assert.False(Directory.Exists(dir), dir);
    }

    private static string[] Words(string file) => File.ReadAllText(file).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
}
