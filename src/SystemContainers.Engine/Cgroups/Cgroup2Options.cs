using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// The options of a pure v2 host's cgroup2 mount at /sys/fs/cgroup. They live on cgroup2's one
/// global superblock, and any cgroup2 mount without options resets them host-wide: lxcfs 5.0.3
/// (Debian 12's) mounts one in its private mount namespace (lxc/lxcfs#692), so both the daemon's own
/// lxcfs and the host's lxcfs.service clear systemd's nsdelegate (the kernel's refusal of cgroup moves
/// across cgroup namespaces) and memory_recursiveprot. The engine puts back what such a mount took.
/// A hybrid host's cgroup2 (at /sys/fs/cgroup/unified) is never touched.
/// </summary>
public sealed record Cgroup2Options(string[] MountOptions, string[] SuperOptions)
{
    public const string Root = "/sys/fs/cgroup";

    /// <summary>The options systemd mounts cgroup2 with that containers' isolation and memory protection rely on.</summary>
    public static readonly string[] Guarded = ["nsdelegate", "memory_recursiveprot"];

    private const ulong MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REMOUNT = 32, MS_NOSYMFOLLOW = 256;

    /// <summary>The options of the cgroup2 mount at /sys/fs/cgroup now; null when none is there (hybrid and v1 hosts).</summary>
    public static Cgroup2Options? Read() => Parse(File.ReadLines("/proc/self/mountinfo"));

    /// <summary>The cgroup2 mount at /sys/fs/cgroup in mountinfo lines; the last one is on top.</summary>
    internal static Cgroup2Options? Parse(IEnumerable<string> mountinfo)
    {
        Cgroup2Options? found = null;
        foreach (var line in mountinfo)
        {
            // Fields: id parent major:minor root mountpoint options [optional...] - fstype source super-options
            int sep = line.IndexOf(" - ", StringComparison.Ordinal);
            if (sep < 0) continue;
            var head = line[..sep].Split(' ');
            var tail = line[(sep + 3)..].Split(' ');
            if (head.Length < 6 || tail.Length < 3 || tail[0] != "cgroup2" || head[4] != Root) continue;
            found = new Cgroup2Options(head[5].Split(','), tail[2].Split(','));
        }
        return found;
    }

    /// <summary>The cgroup2 flags set on the superblock: its options less the read-only state.</summary>
    private IEnumerable<string> Flags => SuperOptions.Where(o => o is not ("rw" or "ro"));

    /// <summary>The flags that were on in before and are off now.</summary>
    public IReadOnlyList<string> LostSince(Cgroup2Options before) => [.. before.Flags.Except(Flags)];

    /// <summary>The guarded options that are off now.</summary>
    public IReadOnlyList<string> MissingGuarded => [.. Guarded.Except(Flags)];

    /// <summary>
    /// The superblock's options for a remount that adds wanted: cgroup2 clears every flag a mount
    /// does not name, so the ones on now are named too.
    /// </summary>
    internal string RemountData(IEnumerable<string> wanted) => string.Join(',', Flags.Union(wanted));

    /// <summary>
    /// mount(2) flags for the remount: a remount also sets the mount's own flags, so nosuid, nodev
    /// and noexec are passed as the mount has them (the atime flags, passed none, stay as they are).
    /// </summary>
    internal ulong RemountFlags =>
        MountOptions.Aggregate(MS_REMOUNT, (flags, o) => flags | o switch
        {
            "ro" => MS_RDONLY, "nosuid" => MS_NOSUID, "nodev" => MS_NODEV, "noexec" => MS_NOEXEC, "nosymfollow" => MS_NOSYMFOLLOW, _ => 0UL,
        });

    /// <summary>Remounts /sys/fs/cgroup with wanted added to the options it has.</summary>
    public void Add(IEnumerable<string> wanted)
    {
        string data = RemountData(wanted);
        if (Libc.mount("cgroup2", Root, "cgroup2", RemountFlags, data) < 0)
            throw NativeException.FromLastError($"remount cgroup2 with {data} on", Root);
    }

    /// <summary>Test-SystemContainerHost -Fix: remounts /sys/fs/cgroup with the guarded options it lacks (a hybrid host has none there).</summary>
    public static void AddGuarded()
    {
        if (Read() is not { } now || now.MissingGuarded.Count == 0) return;
        try
        {
            now.Add(now.MissingGuarded);
        }
        catch (NativeException e)
        {
            throw new EngineException(FailureKind.Failed, "Cgroup2RemountFailed", e.Message);
        }
    }

    /// <summary>
    /// After something that may have mounted cgroup2 without options (cause): puts back the flags
    /// before had and now lacks. Returns whether it remounted and what happened, for the daemon's
    /// log; null when nothing was lost. Never throws: a failed remount is a warning there and in
    /// Test-SystemContainerHost.
    /// </summary>
    public static (bool Remounted, string Message)? Restore(Cgroup2Options? before, Cgroup2Options? now, string cause)
    {
        if (before is null || now is null) return null;
        var lost = now.LostSince(before);
        if (lost.Count == 0) return null;
        string what = $"{cause} cleared {string.Join(",", lost)} on the cgroup2 mount {Root} (lxc/lxcfs#692)";
        try
        {
            now.Add(lost);
            return (true, $"{what}; remounted it with {now.RemountData(lost)}");
        }
        catch (NativeException e)
        {
            return (false, $"warning: {what} and {e.Message}; Test-SystemContainerHost -Fix tries again");
        }
    }
}
