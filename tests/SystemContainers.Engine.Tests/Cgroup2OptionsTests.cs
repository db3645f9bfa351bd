using SystemContainers.Engine.Cgroups;

namespace SystemContainers.Engine.Tests;

/// <summary>
/// Reading a pure v2 host's cgroup2 options and deciding what to remount after lxcfs cleared them
/// (lxc/lxcfs#692). The lines are mountinfo as Debian 12's systemd and this hybrid host show it;
/// the remount itself is tested in the v2 lane's guest, where cgroup2 is at /sys/fs/cgroup.
/// </summary>
public class Cgroup2OptionsTests
{
    private const string Systemd = "26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot";
    private const string Cleared = "26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw";

    private static readonly string[] Hybrid =
    [
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate",
    ];

    [Fact]
    public void ReadsTheMountAndSuperOptionsOfTheCgroup2MountAtSysFsCgroup()
    {
        var options = Cgroup2Options.Parse(["22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw", Systemd])!;

        Assert.Equal(["rw", "nosuid", "nodev", "noexec", "relatime"], options.MountOptions);
        Assert.Equal(["rw", "nsdelegate", "memory_recursiveprot"], options.SuperOptions);
        Assert.Empty(options.MissingGuarded);
    }

    [Fact]
    public void AHybridHostsUnifiedMountIsNeverTheOneToGuard()
    {
        Assert.Null(Cgroup2Options.Parse(Hybrid));
        // The real mountinfo: a hybrid host (this machine) has nothing to remount, so nothing is; a
        // pure v2 host (the lane's guest) has its cgroup2 at /sys/fs/cgroup.
        bool hybrid = File.ReadLines("/proc/self/mountinfo").Any(l => l.Contains(" /sys/fs/cgroup/unified ", StringComparison.Ordinal));
        Assert.Equal(hybrid, Cgroup2Options.Read() is null);
        if (hybrid) Assert.Null(Cgroup2Options.Restore(Cgroup2Options.Parse([Systemd]), Cgroup2Options.Read(), "a test"));
    }

    [Fact]
    public void TheTopmostOfStackedCgroup2MountsCounts()
    {
        var options = Cgroup2Options.Parse([Systemd, "90 26 0:23 / /sys/fs/cgroup rw,relatime shared:40 - cgroup2 cgroup2 rw"])!;

        Assert.Equal(["nsdelegate", "memory_recursiveprot"], options.MissingGuarded);
    }

    [Fact]
    public void AnOptionlessMountLosesWhatSystemdSet()
    {
        var before = Cgroup2Options.Parse([Systemd])!;
        var after = Cgroup2Options.Parse([Cleared])!;

        Assert.Equal(["nsdelegate", "memory_recursiveprot"], after.LostSince(before));
        Assert.Empty(before.LostSince(after));
        Assert.Empty(before.LostSince(before));
        Assert.Null(Cgroup2Options.Restore(before, before, "a test"));
        Assert.Null(Cgroup2Options.Restore(null, after, "a test"));
    }

    [Fact]
    public void TheRemountNamesEveryFlagToKeepAndTheMountsOwnFlags()
    {
        // cgroup2 clears every flag a remount does not name: the ones on now stay named.
        var after = Cgroup2Options.Parse(["26 21 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,favordynmods"])!;

        Assert.Equal("favordynmods,nsdelegate,memory_recursiveprot", after.RemountData(Cgroup2Options.Guarded));
        // MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC; relatime is left to the kernel, which keeps it.
        Assert.Equal(32UL | 1 | 2 | 4 | 8, after.RemountFlags);
        Assert.Equal(32UL, Cgroup2Options.Parse(["26 21 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"])!.RemountFlags);
    }
}
