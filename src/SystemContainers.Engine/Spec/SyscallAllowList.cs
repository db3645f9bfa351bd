namespace SystemContainers.Engine.Spec;

/// <summary>
/// security.syscalls.allow: a comma list of the calls sc-init's seccomp filter denies that a
/// container may be given back (LXD's key; here it only narrows the deny list). These are the
/// keyring calls and those that widen the kernel's surface but stay within a user namespace's
/// checks; the calls that reach the host as a whole (modules, kexec, swap, raw I/O, file
/// handles) are never allowed. sc-init checks each name again against its own list.
/// </summary>
public static class SyscallAllowList
{
    public const string Key = "security.syscalls.allow";

    public static readonly IReadOnlyList<string> Allowable =
        ["keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register"];

    public static IReadOnlyList<string> Parse(string value)
    {
        var names = value.Split(',', StringSplitOptions.TrimEntries).Where(n => n.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        foreach (var name in names.Where(n => !Allowable.Contains(n)))
            throw EngineException.Invalid("InvalidConfigValue",
                $"config key '{Key}' names '{DisplayText.Escape(name)}', which is not a call the filter may give back; allowed: {string.Join(", ", Allowable)}");
        return names;
    }
}
