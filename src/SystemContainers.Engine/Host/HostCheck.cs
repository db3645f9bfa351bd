using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Migration;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Host;

/// <summary>
/// What this host offers containers, like lxc-checkconfig but as findings: kernel features (probed
/// with real calls where no file tells), cgroups, the tools the engine runs and the limits that bite
/// at density. The probes leave nothing behind: a detached idmapped mount that is never attached,
/// a helper process that only holds a user namespace, syscalls refused before they act.
/// </summary>
public sealed unsafe partial class HostCheck(EngineOptions options)
{
    private const string Kernel = "kernel", Cgroup = "cgroup", Tool = "tool", Limit = "limit";

    /// <summary>How many containers the host is judged for when nobody says: the hundred a host is packed with.</summary>
    public const int DefaultContainers = 100;

    /// <summary>Which container settings need each cgroup controller.</summary>
    private static readonly (string Controller, string NeededBy)[] Controllers =
    [
        ("cpu", "limits.cpu.allowance and limits.cpu.priority"), ("cpuset", "limits.cpu"), ("memory", "limits.memory"),
        ("pids", "limits.processes"), ("io", "limits.disk.priority"),
    ];

    private static readonly (string Controller, string NeededBy)[] V1Only =
    [
        ("cpuacct", "CPU statistics"), ("freezer", "Suspend-SystemContainer"), ("devices", "the device policy"),
    ];

    public IReadOnlyList<HostFinding> Run(int containers)
    {
        var findings = new List<HostFinding> { UserNamespaces(containers), NestedUserNamespaces(), SubordinateIds("subuid"), SubordinateIds("subgid"), IdmappedMounts() };
        findings.Add(Filesystem("overlay", "overlay", HostCheckStatus.Failed, "container root file systems are overlay mounts"));
        findings.Add(Filesystem("btrfs", "btrfs", HostCheckStatus.Info, "btrfs storage pools are unavailable"));
        findings.AddRange(Cgroups());
        findings.Add(Pidfd());
        findings.Add(Clone3());
        findings.Add(Seccomp());
        findings.Add(Nftables());
        findings.Add(Userfaultfd());
        findings.Add(SoftDirty());
        findings.Add(ToolVersion("dnsmasq", options.DnsmasqPath, HostCheckStatus.Warning, "managed networks (DHCP and DNS) need dnsmasq"));
        findings.Add(ToolVersion("nft", options.NftPath, HostCheckStatus.Warning, "NAT and the firewall of managed networks need nft"));
        findings.Add(Lxcfs());
        findings.Add(Criu());
        findings.AddRange(HostLimits.All.Select(l => LimitFinding(l, containers)));
        return findings;
    }

    private static HostFinding UserNamespaces(int containers)
    {
        const string key = "user.max_user_namespaces";
        long? max = HostLimits.Read(key);
        string needed = containers.ToString();
        if (max is null) return new(Kernel, "user namespaces", HostCheckStatus.Failed, "absent", needed, "this kernel has no user namespaces (CONFIG_USER_NS); only privileged containers can run");
        return max >= containers
            ? new(Kernel, "user namespaces", HostCheckStatus.Ok, max.ToString()!, needed, $"{key} allows {max}")
            : new(Kernel, "user namespaces", HostCheckStatus.Failed, max.ToString()!, needed, $"{key} allows {max}; every unprivileged container needs one");
    }

    /// <summary>
    /// Root of a user namespace makes one inside it and maps its own root there, as sc-init does for
    /// every unprivileged container (its masks are locked that way). Some kernels refuse that to all
    /// but the host's root: Debian's kernel.unprivileged_userns_clone=0, Ubuntu's AppArmor restriction.
    /// </summary>
    private static HostFinding NestedUserNamespaces()
    {
        const string name = "nested user namespaces";
        var (code, output) = RunTool("unshare", ["--user", "--map-root-user", "--", "unshare", "--user", "--map-root-user", "--", "true"]);
        return code == 0
            ? new(Kernel, name, HostCheckStatus.Ok, "available", null, "unprivileged containers get their masks locked in a user namespace inside the one that makes them")
            : new(Kernel, name, HostCheckStatus.Failed, "refused", null,
                $"unshare inside a user namespace failed ({code}): {output.Split('\n')[0].Trim()}; unprivileged containers cannot start unless the kernel allows it " +
                $"(kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0) or they set {ContainerConfig.Nesting}=true, which leaves their masks unlocked");
    }

    private static HostFinding SubordinateIds(string file)
    {
        string path = Path.Combine("/etc", file);
        string name = file == "subuid" ? "subordinate uids" : "subordinate gids";
        var ranges = IdMap.RootRanges(path);
        long blocks = ranges.Sum(r => r.Count / IdMap.DefaultSize);
        var (start, count) = IdMap.DefaultPool;
        return ranges.Count > 0
            ? new(Kernel, name, blocks > 1 ? HostCheckStatus.Ok : HostCheckStatus.Warning, string.Join(", ", ranges.Select(r => $"{r.Start}-{r.Start + r.Count - 1}")),
                IdMap.DefaultSize.ToString(), $"root's ranges in {path} hold {blocks} block(s) of {IdMap.DefaultSize}: the shared map and {blocks - 1} isolated container(s)")
            : new(Kernel, name, HostCheckStatus.Info, "none", IdMap.DefaultSize.ToString(),
                $"{path} gives root no range of {IdMap.DefaultSize} ids; containers use {start}-{start + count - 1} (as LXD), add root:{start}:{count} to reserve them");
    }

    /// <summary>Makes a real idmapped mount of the state directory, detached and never attached, so nothing sees it.</summary>
    private HostFinding IdmappedMounts()
    {
        string dir = options.StateDir;
        var (fsType, mountPoint) = MountOf(dir);
        string value = $"{fsType} at {mountPoint}";
        try
        {
            using var userns = ProbeUserNamespace();
            const int AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000, OPEN_TREE_CLONE = 1;
            const ulong MOUNT_ATTR_IDMAP = 0x00100000;
            byte[] path = Encoding.UTF8.GetBytes(dir + "\0");
            long tree;
            fixed (byte* p = path) tree = Libc.syscall(Libc.SYS_open_tree, AT_FDCWD, (long)p, OPEN_TREE_CLONE | Libc.O_CLOEXEC, 0);
            if (tree < 0) throw NativeException.FromLastError("open_tree", dir);
            using var treeFd = new SafeFd((int)tree);
            ulong* attr = stackalloc ulong[4];
            attr[0] = MOUNT_ATTR_IDMAP;
            attr[1] = 0;
            attr[2] = 0;
            attr[3] = (ulong)userns.Fd;
            byte empty = 0;
            if (Libc.syscall5(Libc.SYS_mount_setattr, treeFd.Fd, (long)&empty, AT_EMPTY_PATH, (long)attr, 32) < 0)
                throw NativeException.FromLastError("make an idmapped mount of", dir);
            return new(Kernel, "idmapped mounts", HostCheckStatus.Ok, value, null, $"an idmapped mount of {dir} works");
        }
        catch (NativeException e)
        {
            return new(Kernel, "idmapped mounts", HostCheckStatus.Warning, value, null,
                $"{e.Message}; containers fall back to shifted copies of their image (slower first start, more disk)");
        }
    }

    /// <summary>
    /// A user namespace with container root's id map, held by a helper that only sleeps: .NET is
    /// multithreaded, so it cannot unshare one itself.
    /// </summary>
    private static SafeFd ProbeUserNamespace()
    {
        Process helper;
        try
        {
            helper = Process.Start(new ProcessStartInfo("unshare", ["--user", "--", "sleep", "30"]) { UseShellExecute = false })!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new NativeException(e.NativeErrorCode, "run", "unshare --user");
        }
        try
        {
            string own = new FileInfo("/proc/self/ns/user").LinkTarget!;
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (new FileInfo($"/proc/{helper.Id}/ns/user").LinkTarget == own)
            {
                if (helper.HasExited || DateTime.UtcNow > deadline) throw new NativeException(Libc.ESRCH, "create a user namespace with", "unshare --user");
                Thread.Sleep(2);
            }
            var map = IdMap.Shared();
            Sys.WriteText($"/proc/{helper.Id}/uid_map", $"0 {map.UidBase} {map.Size}\n");
            Sys.WriteText($"/proc/{helper.Id}/gid_map", $"0 {map.GidBase} {map.Size}\n");
            return Sys.Open($"/proc/{helper.Id}/ns/user", Libc.O_RDONLY);
        }
        finally
        {
            helper.Kill();
            helper.WaitForExit();
            helper.Dispose();
        }
    }

    /// <summary>The file system type and mount point that hold path, from /proc/self/mountinfo.</summary>
    private static (string FsType, string MountPoint) MountOf(string path)
    {
        string full = Path.GetFullPath(path);
        var best = ("unknown", "/");
        int bestLength = -1;
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            int sep = line.IndexOf(" - ", StringComparison.Ordinal);
            if (sep < 0) continue;
            string mountPoint = line[..sep].Split(' ')[4].Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");
            bool holds = mountPoint == "/" || full == mountPoint || full.StartsWith(mountPoint + "/", StringComparison.Ordinal);
            // Later lines are mounts stacked over earlier ones at the same place.
            if (holds && mountPoint.Length >= bestLength)
            {
                best = (line[(sep + 3)..].Split(' ')[0], mountPoint);
                bestLength = mountPoint.Length;
            }
        }
        return best;
    }

    private static HostFinding Filesystem(string name, string module, HostCheckStatus missing, string without)
    {
        if (File.ReadLines("/proc/filesystems").Any(l => l.Split('\t').Last() == name))
            return new(Kernel, name, HostCheckStatus.Ok, "available", null, $"/proc/filesystems lists {name}");
        string release = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        string deps = $"/lib/modules/{release}/modules.dep";
        if (File.Exists(deps) && File.ReadLines(deps).Any(l => l.Contains($"/{module}.ko", StringComparison.Ordinal)))
            return new(Kernel, name, HostCheckStatus.Ok, "module", null, $"the {module} module loads on first use");
        return new(Kernel, name, missing, "absent", null, $"this kernel has no {name}: {without}");
    }

    private IEnumerable<HostFinding> Cgroups()
    {
        var mounts = CgroupDriverFactory.CgroupMounts();
        var v1 = mounts.Where(m => m.FsType == "cgroup").ToList();
        var unified = mounts.FirstOrDefault(m => m.FsType == "cgroup2");
        string version = v1.Count > 0 ? (unified.MountPoint is null ? "v1" : "hybrid") : unified.MountPoint is null ? "none" : "v2";
        if (version == "none")
        {
            yield return new(Cgroup, "cgroup version", HostCheckStatus.Failed, "none", "v2", "no cgroup hierarchy is mounted");
            yield break;
        }
        string where = string.Join(", ", mounts.Select(m => m.MountPoint).Distinct());
        yield return new(Cgroup, "cgroup version", version == "v2" ? HostCheckStatus.Ok : HostCheckStatus.Info, version, "v2",
            version == "v2" ? $"unified hierarchy at {unified.MountPoint}" : $"v1 controllers at {where}; limits use the v1 files");

        if (version == "v2")
        {
            // Container cgroups live in a delegated systemd scope, or in a subtree of the root without systemd;
            // before the first container the root's controllers are what the subtree can get.
            string subtree = SystemdScopeSubtree.Available
                ? Path.Join(unified.MountPoint, SystemdScopeSubtree.Slice, options.CgroupGroup + ".scope")
                : Path.Join(unified.MountPoint, options.CgroupGroup);
            string dir = Directory.Exists(subtree) ? subtree : unified.MountPoint!;
            var available = File.ReadAllText(Path.Combine(dir, "cgroup.controllers")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var missing = Controllers.Where(c => !available.Contains(c.Controller)).ToList();
            string needed = string.Join(' ', Controllers.Select(c => c.Controller));
            string placement = SystemdScopeSubtree.Available ? $"the delegated systemd scope {subtree}" : $"the subtree {subtree}";
            yield return missing.Count == 0
                ? new(Cgroup, "cgroup delegation", HostCheckStatus.Ok, string.Join(' ', available), needed, $"containers get every controller they need in {placement}")
                : new(Cgroup, "cgroup delegation", HostCheckStatus.Warning, string.Join(' ', available), needed,
                    $"{dir} lacks {string.Join(", ", missing.Select(m => $"{m.Controller} ({m.NeededBy})"))}: containers in {placement} cannot have those limits");
            if (Cgroup2Options.Read() is { } cgroup2) yield return Cgroup2Finding(cgroup2);
            yield break;
        }
        var mounted = v1.SelectMany(m => m.Options).ToHashSet();
        var wanted = Controllers.Select(c => c.Controller == "io" ? ("blkio", c.NeededBy) : c).Concat(V1Only).ToList();
        var absent = wanted.Where(c => !mounted.Contains(c.Item1)).ToList();
        string present = string.Join(' ', wanted.Select(c => c.Item1).Where(mounted.Contains));
        yield return absent.Count == 0
            ? new(Cgroup, "cgroup controllers", HostCheckStatus.Ok, present, string.Join(' ', wanted.Select(c => c.Item1)), "every v1 controller containers need is mounted")
            : new(Cgroup, "cgroup controllers", HostCheckStatus.Warning, present, string.Join(' ', wanted.Select(c => c.Item1)),
                $"not mounted: {string.Join(", ", absent.Select(a => $"{a.Item1} ({a.Item2})"))}");
        if (version == "hybrid")
            yield return new(Cgroup, "cgroup delegation", HostCheckStatus.Ok, unified.MountPoint!, null,
                "containers get their own directory of the controller-less cgroup2 tree, which systemd inside manages");
    }

    /// <summary>Whether the pure v2 mount keeps systemd's nsdelegate and memory_recursiveprot, which an lxcfs start clears.</summary>
    private static HostFinding Cgroup2Finding(Cgroup2Options cgroup2)
    {
        const string name = "cgroup2 options";
        string value = string.Join(',', cgroup2.SuperOptions), needed = string.Join(',', Cgroup2Options.Guarded);
        var missing = cgroup2.MissingGuarded;
        if (missing.Count == 0)
            return new(Cgroup, name, HostCheckStatus.Ok, value, needed,
                $"{Cgroup2Options.Root} refuses cgroup moves across cgroup namespaces (nsdelegate) and protects memory recursively");
        string cause = Runtime.Lxcfs.IsLxcfsMount(Runtime.Lxcfs.SystemMount) ? " (lxcfs.service clears them when it starts, lxc/lxcfs#692)" : "";
        string effect = missing.Contains("nsdelegate")
            ? "the kernel does not refuse cgroup moves across cgroup namespaces, so a container's cgroup namespace does not confine its processes"
            : "memory.min and memory.low do not protect the cgroups below the one they are set on";
        return new(Cgroup, name, HostCheckStatus.Warning, value, needed,
            $"cgroup2 is mounted at {Cgroup2Options.Root} without {string.Join(",", missing)}{cause}: {effect}; Test-SystemContainerHost -Fix remounts it with them");
    }

    private static HostFinding Pidfd()
    {
        try
        {
            using var fd = Sys.PidfdOpen(Environment.ProcessId);
            return new(Kernel, "pidfd", HostCheckStatus.Ok, "available", null, "pidfd_open works; containers are supervised through pidfds");
        }
        catch (NativeException e)
        {
            return new(Kernel, "pidfd", HostCheckStatus.Failed, "absent", null, $"{e.Message}; the daemon supervises containers through pidfds (Linux 5.3)");
        }
    }

    /// <summary>clone3 with no arguments is refused with EINVAL by a kernel that has it, before it could make a process.</summary>
    private static HostFinding Clone3()
    {
        long rc = Libc.syscall(Libc.SYS_clone3, 0, 0, 0, 0);
        int errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
        return errno == Libc.EINVAL
            ? new(Kernel, "clone3", HostCheckStatus.Ok, "available", null, "sc-init starts containers with clone3 straight into their cgroup")
            : new(Kernel, "clone3", HostCheckStatus.Failed, NativeException.ErrnoName(errno), null, "sc-init needs clone3 with CLONE_INTO_CGROUP (Linux 5.7)");
    }

    private static HostFinding Seccomp()
    {
        const string path = "/proc/sys/kernel/seccomp/actions_avail";
        string actions = File.Exists(path) ? File.ReadAllText(path).Trim() : "";
        return actions.Split(' ').Contains("errno")
            ? new(Kernel, "seccomp", HostCheckStatus.Ok, actions, "errno", "containers run under a seccomp filter")
            : new(Kernel, "seccomp", HostCheckStatus.Failed, actions.Length > 0 ? actions : "absent", "errno", "containers need seccomp filters (CONFIG_SECCOMP_FILTER)");
    }

    /// <summary>Lists the tables of this network namespace: the kernel answers only if it has nf_tables (loading it if need be).</summary>
    private HostFinding Nftables()
    {
        if (!File.Exists(options.NftPath))
            return new(Kernel, "nftables", HostCheckStatus.Warning, "unknown", null, $"{options.NftPath} is not installed, so nf_tables cannot be asked");
        var (code, output) = RunTool(options.NftPath, ["list", "tables"]);
        return code == 0
            ? new(Kernel, "nftables", HostCheckStatus.Ok, "available", null, "the kernel answers nf_tables requests")
            : new(Kernel, "nftables", HostCheckStatus.Warning, "absent", null, $"nft list tables failed: {output}; managed networks get no NAT or firewall");
    }

    private static HostFinding Userfaultfd() =>
        File.Exists("/proc/sys/vm/unprivileged_userfaultfd") || File.Exists("/dev/userfaultfd")
            ? new(Kernel, "userfaultfd", HostCheckStatus.Ok, "available", null, "CRIU can restore memory lazily (post-copy migration)")
            : new(Kernel, "userfaultfd", HostCheckStatus.Info, "absent", null, "no post-copy migration: CRIU cannot restore memory lazily (CONFIG_USERFAULTFD)");

    /// <summary>
    /// Clears this process's soft-dirty bits (harmless: nothing here tracks them), then writes a page:
    /// a kernel with soft-dirty tracking marks it in /proc/self/pagemap (bit 55).
    /// </summary>
    private static HostFinding SoftDirty()
    {
        int pageSize = Environment.SystemPageSize;
        byte* page = (byte*)NativeMemory.AlignedAlloc((nuint)pageSize, (nuint)pageSize);
        try
        {
            Volatile.Write(ref page[0], 1);
            Sys.WriteText("/proc/self/clear_refs", "4");
            bool cleared = !IsSoftDirty(page, pageSize);
            Volatile.Write(ref page[0], 2);
            if (cleared && IsSoftDirty(page, pageSize))
                return new(Kernel, "soft-dirty", HostCheckStatus.Ok, "available", null, "CRIU can track memory written during pre-copy migration");
            return new(Kernel, "soft-dirty", HostCheckStatus.Info, "absent", null, "no iterative pre-copy migration: the kernel does not track soft-dirty pages (CONFIG_MEM_SOFT_DIRTY)");
        }
        catch (NativeException e)
        {
            return new(Kernel, "soft-dirty", HostCheckStatus.Info, "absent", null, $"{e.Message}; no iterative pre-copy migration");
        }
        finally
        {
            NativeMemory.AlignedFree(page);
        }
    }

    private static bool IsSoftDirty(byte* page, int pageSize)
    {
        using var pagemap = File.OpenHandle("/proc/self/pagemap");
        Span<byte> entry = stackalloc byte[8];
        if (RandomAccess.Read(pagemap, entry, (long)((ulong)page / (ulong)pageSize) * 8) != 8) return false;
        return (BitConverter.ToUInt64(entry) & (1UL << 55)) != 0;
    }

    [GeneratedRegex(@"\d+(\.\d+)+")]
    private static partial Regex VersionPattern();

    /// <summary>
    /// The configured criu asked over its RPC (criu swrk), as checkpoints will use it: its version,
    /// then what it and this kernel offer migration (memory tracking for pre-copy, lazy pages for post-copy).
    /// </summary>
    private HostFinding Criu()
    {
        const string name = "criu";
        string needed = $">= {CriuVersion.Minimum}";
        var client = new CriuClient(options.CriuPath);
        CriuVersion version;
        try { version = client.Version(); }
        catch (Exception e) when (e is EngineException or NativeException)
        {
            bool absent = e is EngineException { Reason: "CriuMissing" };
            return new(Tool, name, HostCheckStatus.Info, absent ? "absent" : "unknown", needed,
                absent ? $"{options.CriuPath} is not installed: checkpoints and live migration need criu {needed} (./build.ps1 criu installs one)" : e.Message);
        }
        if (!version.IsAtLeast(CriuVersion.Minimum))
            return new(Tool, name, HostCheckStatus.Warning, version.ToString(), needed,
                $"{options.CriuPath}: criu {version} fails or hangs on current kernels; checkpoints and live migration need criu {needed} (./build.ps1 criu installs one)");
        try
        {
            var f = client.Features();
            string Has(bool yes) => yes ? "yes" : "no";
            return new(Tool, name, HostCheckStatus.Ok, version.ToString(), needed,
                $"{options.CriuPath}: lazy pages {Has(f.LazyPages)} (post-copy migration), memory tracking {Has(f.MemoryTracking)} (pre-copy migration)");
        }
        catch (Exception e) when (e is EngineException or NativeException)
        {
            return new(Tool, name, HostCheckStatus.Warning, version.ToString(), needed, e.Message);
        }
    }

    private static HostFinding ToolVersion(string name, string path, HostCheckStatus missing, string why)
    {
        if (!File.Exists(path)) return new(Tool, name, missing, "absent", null, $"{path} is not installed: {why}");
        var (code, output) = RunTool(path, ["--version"]);
        var version = VersionPattern().Match(output);
        return code == 0 && version.Success
            ? new(Tool, name, HostCheckStatus.Ok, version.Value, null, $"{path}: {output.Split('\n')[0].Trim()}")
            : new(Tool, name, missing, "unknown", null, $"{path} --version failed ({code}): {output.Split('\n')[0].Trim()}");
    }

    /// <summary>The host's lxcfs when one is mounted at /var/lib/lxcfs (the daemon then uses it), else the one the daemon would run.</summary>
    private HostFinding Lxcfs()
    {
        if (Runtime.Lxcfs.IsLxcfsMount(Runtime.Lxcfs.SystemMount))
            return new(Tool, "lxcfs", HostCheckStatus.Ok, "mounted", null, $"the host's lxcfs serves {Runtime.Lxcfs.SystemMount}; containers get its views");
        return ToolVersion("lxcfs", options.LxcfsPath, HostCheckStatus.Warning,
            "without lxcfs, free, top, uptime and nproc inside containers show the host's memory, CPUs and uptime");
    }

    /// <summary>Runs a tool that answers at once; its exit code and what it printed (stdout, then stderr).</summary>
    private static (int Code, string Output) RunTool(string path, string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(path, args)
        {
            UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true,
        })!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            p.Kill();
            p.WaitForExit();
            return (-1, $"{path} did not answer within 10 s");
        }
        return (p.ExitCode, (stdout.Result + stderr.Result).Trim());
    }

    private static HostFinding LimitFinding(HostLimits.Limit limit, int containers)
    {
        long needed = limit.NeededFor(containers);
        if (HostLimits.Read(limit.Key) is not long value)
            return new(Limit, limit.Key, HostCheckStatus.Info, "unknown", needed.ToString(), $"{HostLimits.ProcPath(limit.Key)} is not visible in this kernel or network namespace");
        return value >= needed
            ? new(Limit, limit.Key, HostCheckStatus.Ok, value.ToString(), needed.ToString(), $"enough for {containers} containers")
            : new(Limit, limit.Key, HostCheckStatus.Warning, value.ToString(), needed.ToString(), $"too low for {containers} containers: {limit.Why}");
    }
}
