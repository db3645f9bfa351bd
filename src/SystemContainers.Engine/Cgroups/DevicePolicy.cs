namespace SystemContainers.Engine.Cgroups;

/// <summary>One allowed character or block device: a major, a minor (null for any) and "rwm" access.</summary>
public sealed record DeviceRule(char Type, int Major, int? Minor, string Access = "rwm")
{
    /// <summary>The devices controller's syntax: "c 1:3 rwm", "c 136:* rwm".</summary>
    public override string ToString() => $"{Type} {Major}:{(Minor is int m ? m.ToString() : "*")} {Access}";
}

/// <summary>
/// The devices a container may open (or mknod), whatever nodes it finds or makes: the standard
/// /dev set of a system container, as LXD allows it. Enforced by the v1 devices controller and,
/// on cgroup2, by a BPF_PROG_TYPE_CGROUP_DEVICE program.
/// </summary>
public static class DevicePolicy
{
    public static readonly IReadOnlyList<DeviceRule> Allowed =
    [
        new('c', 1, 3), // null
        new('c', 1, 5), // zero
        new('c', 1, 7), // full
        new('c', 1, 8), // random
        new('c', 1, 9), // urandom
        new('c', 5, 0), // tty
        new('c', 5, 1), // console
        new('c', 5, 2), // ptmx
        new('c', 136, null), // the container's devpts (and its console, a pty of the daemon's)
    ];

    /// <summary>Turns a v1 devices cgroup from allow-all into the allow-list (it must have no children yet).</summary>
    public static void ApplyV1(string devicesDir)
    {
        CgroupFs.Write(Path.Combine(devicesDir, "devices.deny"), "a");
        foreach (var rule in Allowed) CgroupFs.Write(Path.Combine(devicesDir, "devices.allow"), rule.ToString());
    }
}
