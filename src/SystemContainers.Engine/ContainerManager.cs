using System.Collections.Concurrent;
using Microsoft.Win32.SafeHandles;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Host;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine;

/// <summary>
/// The engine's front door for containers: create, start, stop, exec, delete, list. The daemon
/// process is the child subreaper and parent of every container init; exits arrive through
/// pidfds on the event loop. After a daemon restart, running containers are adopted again.
/// </summary>
public sealed class ContainerManager : IDisposable
{
    // Capabilities no container gets: kernel modules, the clock, raw I/O, MAC policy.
    private static readonly int[] DroppedCapabilities = [16, 25, 17, 32, 33];
    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    private readonly EngineOptions _options;
    private readonly StateStore _store;
    private readonly ImageStore _images;
    private readonly ICgroupDriver _cgroups;
    private readonly ScInit _scInit;
    private readonly EventLoop _loop = new();
    private readonly ConcurrentDictionary<string, Container> _containers = new(StringComparer.Ordinal);

    public ContainerManager(EngineOptions options, ImageStore images, ICgroupDriver cgroups)
    {
        _options = options;
        _images = images;
        _cgroups = cgroups;
        _store = new StateStore(options.StateDir, options.RunDir);
        _scInit = new ScInit(options.ScInitPath);
        // Container inits are orphaned when sc-init exits; as subreaper this process inherits and reaps them.
        Sys.SetChildSubreaper();
        if (!File.Exists(options.ScInitPath))
            throw EngineException.NotFound("ScInitNotFound", $"sc-init not found at {options.ScInitPath}; run ./build.ps1 build");
        // The run directory may be traversable (for dnsmasq); the containers' mounts are root's alone.
        File.SetUnixFileMode(_store.RunContainersDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Networks = new NetworkManager(options, _loop);
        Recovery.ReclaimStaging(_store.ContainersDir);
        Recovery.ReclaimTempFiles(_store.ContainersDir);
        Recovery.ReclaimTempFiles(_store.RunContainersDir);
        foreach (var name in _store.Names()) Load(name);
        Recovery.ReclaimOrphans(_store.RunContainersDir, _containers.Keys);
        Networks.StartServices();
        Lxcfs = new Lxcfs(options.LxcfsPath, options.RunDir, _loop);
        Lxcfs.Start();
    }

    /// <summary>Where the containers' /proc and /sys views of their own limits come from.</summary>
    public Lxcfs Lxcfs { get; }

    /// <summary>The managed networks the containers' NICs join.</summary>
    public NetworkManager Networks { get; }

    public event Action<EngineEvent>? Events;

    public string CgroupVersion => _cgroups.Version;

    private sealed class Container(ContainerRecord record, RuntimeRecord runtime)
    {
        public ContainerRecord Record = record;
        public RuntimeRecord Runtime = runtime;
        public Live? Live;
        /// <summary>Why its files could not be read (status Error); such a container can only be removed.</summary>
        public string? Damage;
        public readonly SemaphoreSlim Gate = new(1, 1);
    }

    /// <summary>A running init and everything the daemon holds for it; disposed when it exits.</summary>
    private sealed class Live(int pid, SafeFd pidfd, ContainerCgroup cgroup, ConsoleLog? console) : IDisposable
    {
        public string? CpuSet;
        /// <summary>The host ends of the container's veth pairs, removed when it stops (locked: hot-plug changes it).</summary>
        public List<HostInterface> HostInterfaces = [];
        public bool Frozen;
        public (DateTimeOffset At, long CpuNanoseconds) LastSample;
        public int Pid { get; } = pid;
        public SafeFd Pidfd { get; } = pidfd;
        public ContainerCgroup Cgroup { get; } = cgroup;
        public ConsoleLog? Console { get; } = console;
        public TaskCompletionSource Exited { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Dispose()
        {
            Console?.Dispose();
            Pidfd.Dispose();
        }
    }

    public IReadOnlyList<ContainerView> List() =>
        _containers.Values.Select(View).OrderBy(v => v.Name, StringComparer.Ordinal).ToList();

    public ContainerView Get(string name) => View(Find(name));

    public IReadOnlyList<string> ContainersUsingImage(string fingerprint) =>
        _containers.Values.Where(c => c.Record.ImageFingerprint == fingerprint).Select(c => c.Record.Name).Order().ToList();

    public string ConsoleLogPath(string name) => Path.Combine(RunDirOf(Find(name).Record.Name), "console.log");

    /// <summary>Host-side facts for tests and diagnostics: the cgroup directories of a running container.</summary>
    public IReadOnlyList<string> CgroupDirectories(string name) =>
        Find(name).Live?.Cgroup.Directories ?? [];

    public ContainerView Create(string name, string image, IReadOnlyDictionary<string, string>? config)
    {
        ContainerName.Validate(name);
        var parsed = WithNicDefaults(ContainerConfig.Parse(config), firstConfig: true);
        foreach (var disk in parsed.Disks) disk.CheckSource();
        var img = _images.Resolve(image);
        Container container;
        IdMap? idmap;
        // Choosing a map and claiming the name are one step, so two creates never get one block.
        lock (_idMapLock)
        {
            if (_containers.ContainsKey(name)) throw EngineException.Conflict("ContainerExists", $"container '{name}' already exists");
            idmap = parsed.IsPrivileged ? null : IdMap.ForConfig(parsed, IsolatedMaps());
            var record = new ContainerRecord(name, img.Fingerprint, img.Aliases.Contains(image) ? image : img.Aliases.FirstOrDefault(),
                parsed.Raw, DateTimeOffset.UtcNow, idmap, img.InitKind, Guid.NewGuid());
            container = new Container(record, RuntimeRecord.NeverStarted);
            // Held until the files exist, so nothing queued on the new container acts on it half-made.
            container.Gate.Wait();
            if (!_containers.TryAdd(name, container))
                throw EngineException.Conflict("ContainerExists", $"container '{name}' already exists");
        }
        string staging = Path.Combine(_store.ContainersDir, $".new-{name}-{Guid.NewGuid():N}");
        try
        {
            string upper = Path.Combine(staging, "fs", "upper");
            Directory.CreateDirectory(upper);
            Directory.CreateDirectory(Path.Combine(staging, "fs", "work"));
            if (idmap is not null) Sys.Chown(upper, idmap.RootUid, idmap.RootGid);
            Networks.Register(name, parsed.Nics);
            StepTrace.Mark("create: NICs registered");
            _store.CreateConfig(staging, container.Record);
            StepTrace.Mark("create: config written");
            TestHooks.Reach("create-staged");
            Directory.Move(staging, _store.DirectoryOf(name));
        }
        catch
        {
            Networks.Register(name, []);
            _containers.TryRemove(name, out _);
            TreeRemover.Remove(staging);
            throw;
        }
        finally
        {
            container.Gate.Release();
        }
        Raise("container-created", name);
        return View(container);
    }

    private readonly object _idMapLock = new();

    /// <summary>
    /// The maps that are some container's own: a shared map is no one's, and may be handed out
    /// again. Only the one key is read, so a create costs no parse of every other container's config.
    /// </summary>
    private IEnumerable<IdMap> IsolatedMaps() =>
        _containers.Values.Select(c => c.Record).Where(r => r.IdMap is not null && ContainerConfig.IsIsolated(r.Config)).Select(r => r.IdMap!);

    public Task<ContainerView> StartAsync(string name, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-started", c =>
        {
            if (c.Live is not null) throw EngineException.Conflict("AlreadyRunning", $"container '{name}' is already running");
            Launch(c);
            return Task.CompletedTask;
        }, ct, id);

    public Task<ContainerView> StopAsync(string name, bool force, TimeSpan? timeout, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-stopped", c => StopLocked(c, force, timeout ?? ContainerConfig.Parse(c.Record.Config).StopTimeoutValue), ct, id);

    public Task<ContainerView> RestartAsync(string name, bool force, TimeSpan? timeout, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-restarted", async c =>
        {
            await StopLocked(c, force, timeout ?? ContainerConfig.Parse(c.Record.Config).StopTimeoutValue);
            Launch(c);
        }, ct, id);

    public Task DeleteAsync(string name, bool force, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-deleted", async c =>
        {
            if (c.Live is not null)
            {
                if (!force) throw EngineException.Conflict("ContainerRunning", $"container '{name}' is running; stop it first or use -Force");
                await StopLocked(c, force: true, TimeSpan.Zero);
            }
            // A damaged container may still run processes the daemon does not track.
            CgroupKiller.KillAll(_cgroups.Open(name));
            _cgroups.Remove(name);
            string doomed = Path.Combine(_store.ContainersDir, $".delete-{name}-{Guid.NewGuid():N}");
            Directory.Move(_store.DirectoryOf(name), doomed);
            TestHooks.Reach("remove-moved");
            TreeRemover.Remove(RunDirOf(name));
            Networks.Unregister(name);
            _containers.TryRemove(new KeyValuePair<string, Container>(name, c));
            // Gone from the store already; what cannot be removed now is reclaimed at the next start.
            try { TreeRemover.Remove(doomed); }
            catch (NativeException e) { Console.Error.WriteLine($"cannot remove {doomed} now: {e.Message}"); }
            TestHooks.Reach("remove-done");
        }, ct, id, evenDamaged: true);

    /// <summary>
    /// Changes config keys (a null or empty value removes one). The whole result is validated
    /// first; on a running container the limits take effect at once, and if the kernel refuses
    /// them the old ones are put back. Only then is config.json replaced.
    /// </summary>
    public Task<ContainerView> UpdateConfigAsync(string name, IReadOnlyDictionary<string, string?> changes, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-updated", c =>
        {
            var merged = new Dictionary<string, string>(c.Record.Config, StringComparer.Ordinal);
            foreach (var (given, value) in changes)
            {
                string key = ContainerConfig.CanonicalKey(given);
                if (key.StartsWith("security.", StringComparison.OrdinalIgnoreCase))
                    throw EngineException.Invalid("ImmutableConfigKey", $"config key '{key}' can only be set when the container is created");
                if (string.IsNullOrEmpty(value)) merged.Remove(key);
                else merged[key] = value;
            }
            var config = ContainerConfig.Parse(merged);
            bool nicsChanged = changes.Keys.Select(ContainerConfig.CanonicalKey).Any(NicSpec.IsNicKey);
            var old = ContainerConfig.Parse(c.Record.Config);
            foreach (var disk in config.Disks.Except(old.Disks)) disk.CheckSource();
            if (nicsChanged)
            {
                config = WithNicDefaults(config, firstConfig: false);
                Networks.Register(name, config.Nics);
            }
            var plugged = new List<HostInterface>();
            bool disksChanged = false;
            try
            {
                if (nicsChanged && c.Live is { } running) PlugAdded(c, running, old, config, plugged);
                if (c.Live is { } withDisks) disksChanged = ChangeDisks(c, withDisks, old, config);
                ApplyAndSave(c, config);
            }
            catch when (nicsChanged || disksChanged)
            {
                if (disksChanged && c.Live is { } withDisks)
                {
                    try { ChangeDisks(c, withDisks, config, old); }
                    catch (EngineException e) { Console.Error.WriteLine($"container '{name}': cannot put its disks back: {e.Message}"); }
                }
                if (!nicsChanged) throw;
                if (c.Live is { } running)
                    lock (running.HostInterfaces) running.HostInterfaces.RemoveAll(plugged.Contains);
                DetachAll(plugged);
                Networks.Register(name, old.Nics);
                throw;
            }
            if (nicsChanged && c.Live is { } live) UnplugRemoved(c, live, old, config);
            return Task.CompletedTask;
        }, ct, id);

    /// <summary>Hot-plugs and unplugs a running container's disks from before to after; false when they are the same.</summary>
    private bool ChangeDisks(Container c, Live live, ContainerConfig before, ContainerConfig after)
    {
        if (before.Disks.SequenceEqual(after.Disks)) return false;
        DiskPlug.Change(_scInit, live.Pidfd, c.Record.IdMap, locked: c.Record.IdMap is not null && !after.IsNesting, c.Record.Name, before, after);
        return true;
    }

    /// <summary>
    /// Hot-plugs the bridged NICs a running container's new config adds. A device whose network,
    /// names or MAC change keeps its current NIC until the next start.
    /// </summary>
    private void PlugAdded(Container c, Live live, ContainerConfig before, ContainerConfig after, List<HostInterface> plugged)
    {
        var had = before.BridgedNics.Select(n => n.Device).ToHashSet(StringComparer.Ordinal);
        foreach (var nic in after.BridgedNics.Where(n => !had.Contains(n.Device)))
        {
            try
            {
                var host = Networks.Plug(c.Record.Name, nic, live.Pid);
                plugged.Add(host);
                lock (live.HostInterfaces) live.HostInterfaces.Add(host);
            }
            catch (NativeException e)
            {
                throw new EngineException(FailureKind.Failed, "HotplugFailed",
                    $"cannot add NIC {nic.Device} to running container '{c.Record.Name}': {e.Message}", e);
            }
        }
    }

    /// <summary>Unplugs the bridged NICs a running container's new config no longer has (the peer goes with its host end).</summary>
    private void UnplugRemoved(Container c, Live live, ContainerConfig before, ContainerConfig after)
    {
        var keeps = after.BridgedNics.Select(n => n.Device).ToHashSet(StringComparer.Ordinal);
        var gone = before.BridgedNics.Where(n => !keeps.Contains(n.Device)).Select(n => n.HostNameFor(c.Record.Name)).ToHashSet(StringComparer.Ordinal);
        List<HostInterface> unplugged;
        lock (live.HostInterfaces)
        {
            unplugged = live.HostInterfaces.Where(h => gone.Contains(h.Name)).ToList();
            live.HostInterfaces.RemoveAll(unplugged.Contains);
        }
        DetachAll(unplugged);
    }

    /// <summary>A validated config: limits applied to a running container (or put back if the kernel refuses), then saved.</summary>
    private void ApplyAndSave(Container c, ContainerConfig config)
    {
        string name = c.Record.Name;
        if (c.Live is { } live)
        {
            var old = ContainerConfig.Parse(c.Record.Config).Limits;
            string? oldSet = live.CpuSet;
            try
            {
                live.CpuSet = CpuSetFor(config.Limits, except: c);
                _cgroups.Apply(live.Cgroup, config.Limits, live.CpuSet);
            }
            catch (Exception e) when (e is NativeException or IOException)
            {
                live.CpuSet = oldSet;
                _cgroups.Apply(live.Cgroup, old, oldSet);
                throw new EngineException(FailureKind.Failed, "LimitRefused", $"cannot apply limits to container '{name}': {e.Message}", e);
            }
        }
        c.Record = c.Record with { Config = config.Raw };
        _store.WriteConfig(_store.DirectoryOf(name), c.Record);
    }

    /// <summary>Freezes every process of a running container (cgroup freezer).</summary>
    public Task<ContainerView> FreezeAsync(string name, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-frozen", c =>
        {
            var live = c.Live ?? throw EngineException.Conflict("NotRunning", $"container '{name}' is not running");
            if (live.Frozen) throw EngineException.Conflict("AlreadyFrozen", $"container '{name}' is already frozen");
            _cgroups.SetFrozen(live.Cgroup, true);
            live.Frozen = true;
            return Task.CompletedTask;
        }, ct, id);

    public Task<ContainerView> ThawAsync(string name, CancellationToken ct = default, Guid? id = null) =>
        UnderGate(name, "container-thawed", c =>
        {
            var live = c.Live ?? throw EngineException.Conflict("NotRunning", $"container '{name}' is not running");
            if (!live.Frozen) throw EngineException.Conflict("NotFrozen", $"container '{name}' is not frozen");
            Thaw(live);
            return Task.CompletedTask;
        }, ct, id);

    private void Thaw(Live live)
    {
        _cgroups.SetFrozen(live.Cgroup, false);
        live.Frozen = false;
    }

    /// <summary>A sample of every container's resource use; one removed while they are sampled is left out.</summary>
    public IReadOnlyList<ContainerStats> StatsOfAll()
    {
        var all = new List<ContainerStats>();
        foreach (var c in List())
        {
            try { all.Add(Stats(c.Name)); }
            catch (EngineException e) when (e.Kind == FailureKind.NotFound) { }
        }
        return all;
    }

    /// <summary>A sample of a container's resource use; a stopped container gives a sample that says so.</summary>
    public ContainerStats Stats(string name)
    {
        var c = Find(name);
        var now = DateTimeOffset.UtcNow;
        var live = c.Live;
        var disk = TreeUsage.Measure(Path.Combine(_store.DirectoryOf(name), "fs", "upper"), TreeUsage.DefaultMaxEntries, TreeUsage.DefaultBudget);
        if (live is null)
            return new ContainerStats(name, c.Damage is null ? ContainerStatus.Stopped : ContainerStatus.Error, now, TimeSpan.Zero, null, 0, TimeSpan.Zero, [], disk.Bytes,
                c.Runtime.OomKills, disk.Partial);
        var cg = _cgroups.ReadStats(live.Cgroup);
        var (at, cpu) = live.LastSample;
        var interval = now - at;
        double percent = interval.TotalMilliseconds > 0 ? (cg.CpuUsageNanoseconds - cpu) / (interval.TotalMilliseconds * 1e6) * 100 : 0;
        live.LastSample = (now, cg.CpuUsageNanoseconds);
        return new ContainerStats(name, live.Frozen ? ContainerStatus.Frozen : ContainerStatus.Running, now,
            now - (c.Runtime.StartedAt ?? now), cg, Math.Max(0, percent), interval, NetworkOf(live.Pid), disk.Bytes, DiskUsagePartial: disk.Partial);
    }

    /// <summary>Interface counters from /proc/&lt;pid&gt;/net/dev, which shows the namespace of that process.</summary>
    private static IReadOnlyList<InterfaceStats> NetworkOf(int pid)
    {
        var result = new List<InterfaceStats>();
        string[] lines;
        try { lines = File.ReadAllLines($"/proc/{pid}/net/dev"); }
        catch (IOException) { return result; }
        foreach (var line in lines.Skip(2))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            var f = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 10) continue;
            result.Add(new InterfaceStats(line[..colon].Trim(), long.Parse(f[0]), long.Parse(f[1]), long.Parse(f[8]), long.Parse(f[9])));
        }
        return result;
    }

    /// <summary>
    /// The CPUs a container is pinned to: its explicit list, or for a count the least used CPUs
    /// among the running containers' pins (so counts spread over the host), or null for all.
    /// </summary>
    private string? CpuSetFor(ResourceLimits limits, Container? except)
    {
        if (limits.CpuSet is not null) return limits.CpuSet;
        if (limits.CpuCount is not int count) return null;
        var use = new int[Environment.ProcessorCount];
        foreach (var other in _containers.Values)
            if (other != except && other.Live?.CpuSet is string set)
                foreach (int cpu in CpuList(set).Where(x => x < use.Length)) use[cpu]++;
        return string.Join(',', Enumerable.Range(0, use.Length).OrderBy(i => use[i]).ThenBy(i => i).Take(count).Order());
    }

    private static IEnumerable<int> CpuList(string set) =>
        set.Split(',').SelectMany(part =>
        {
            var ends = part.Split('-').Select(int.Parse).ToArray();
            return Enumerable.Range(ends[0], ends[^1] - ends[0] + 1);
        });

    /// <summary>
    /// Runs one state change at a time per container, then announces it. The change acts on the
    /// container the name meant when it was asked for (or the one with id): one removed while the
    /// change waited is not found, even if a newer container has taken its name since.
    /// </summary>
    private async Task<ContainerView> UnderGate(string name, string action, Func<Container, Task> change, CancellationToken ct,
        Guid? id, bool evenDamaged = false)
    {
        var c = Find(name);
        if (id is Guid expected && c.Record.Id != expected) throw Gone(name);
        await c.Gate.WaitAsync(ct);
        try
        {
            if (!_containers.TryGetValue(name, out var current) || current != c) throw Gone(name);
            if (!evenDamaged) Intact(c);
            await change(c);
        }
        finally
        {
            c.Gate.Release();
        }
        Raise(action, name);
        return View(c);
    }

    /// <summary>Starts a command in the container's namespaces and cgroup (as a child of its init's cgroup).</summary>
    public ExecSession Exec(string name, ExecRequest request)
    {
        var c = Intact(Find(name));
        var live = c.Live ?? throw EngineException.Conflict("NotRunning", $"container '{name}' is not running");
        if (live.Frozen) throw EngineException.Conflict("Frozen", $"container '{name}' is frozen; resume it first");
        if (request.WorkingDirectory is { } cwd) ExecLimits.CheckWorkingDirectory(cwd);
        CheckMapped(c, "uid", request.User);
        CheckMapped(c, "gid", request.Group);
        var config = ContainerConfig.Parse(c.Record.Config);
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = DefaultPath, ["HOME"] = request.User == 0 ? "/root" : "/", ["container"] = "systemcontainers",
        };
        if (request.Interactive) env["TERM"] = "xterm-256color";
        foreach (var (k, v) in config.Environment) env[k] = v;
        foreach (var (k, v) in request.Environment ?? new Dictionary<string, string>())
        {
            ExecLimits.CheckVariableName(k, "InvalidEnvironment");
            env[k] = v;
        }
        ExecLimits.CheckProcess(request.Command, env);
        var plan = new LaunchPlan()
            .Add("userns", c.Record.IdMap is null ? 0 : 1)
            .Add("uid", request.User)
            .Add("gid", request.Group)
            .Add("cwd", request.WorkingDirectory ?? (request.User == 0 ? "/root" : "/"))
            .Add("home", request.WorkingDirectory is null ? 1 : 0)
            .Add("pty", request.Interactive ? 1 : 0)
            .Add(_cgroups.JoinOf(live.Pid))
            .AddAll("capdrop", DroppedCapabilities.Select(x => x.ToString()))
            .AddAll("sysallow", config.SyscallsAllowed)
            .AddAll("env", env.Select(kv => $"{kv.Key}={kv.Value}"))
            .AddAll("arg", request.Command);

        try
        {
            if (request.Interactive)
            {
                var (helper, terminal) = _scInit.ExecOnTerminal(plan.Add("rows", request.Height).Add("cols", request.Width), live.Pidfd);
                return new ExecSession(helper, null, null, null, terminal);
            }
            return ExecOnPipes(plan, live.Pidfd);
        }
        catch (ScInitException e)
        {
            throw new EngineException(FailureKind.Failed, "ExecFailed", $"cannot run '{request.Command[0]}' in container '{name}': {e.Message}");
        }
    }

    /// <summary>
    /// An exec id must be one the container's map gives it: an unmapped one (or -1, which the
    /// set*id calls read as "keep") would leave the command with host ids.
    /// </summary>
    private static void CheckMapped(Container c, string kind, int id)
    {
        long size = c.Record.IdMap?.Size ?? uint.MaxValue;
        if (id < 0 || id >= size)
            throw EngineException.Invalid("InvalidUser", $"{kind} {id} is not mapped in container '{c.Record.Name}' (it maps 0 to {size - 1})");
    }

    private ExecSession ExecOnPipes(LaunchPlan plan, SafeFd initPidfd)
    {
        var (inRead, inWrite) = Sys.Pipe();
        var (outRead, outWrite) = Sys.Pipe();
        var (errRead, errWrite) = Sys.Pipe();
        try
        {
            ExecHelper helper;
            using (inRead)
            using (outWrite)
            using (errWrite)
                helper = _scInit.Exec(plan, initPidfd, inRead, outWrite, errWrite);
            return new ExecSession(helper, ToStream(inWrite, FileAccess.Write), ToStream(outRead, FileAccess.Read),
                ToStream(errRead, FileAccess.Read), null);
        }
        catch
        {
            inWrite.Dispose();
            outRead.Dispose();
            errRead.Dispose();
            throw;
        }
    }

    private static FileStream ToStream(SafeFd fd, FileAccess access)
    {
        var handle = new SafeFileHandle(fd.DangerousGetHandle(), ownsHandle: true);
        fd.SetHandleAsInvalid();
        return new FileStream(handle, access, 0);
    }

    private Container Find(string name) =>
        _containers.TryGetValue(name, out var c) ? c : throw EngineException.NotFound("ContainerNotFound", $"container '{name}' not found");

    private static EngineException Gone(string name) =>
        EngineException.NotFound("ContainerNotFound", $"container '{name}' not found (it was removed)");

    /// <summary>Refuses to act on a container whose files could not be read.</summary>
    private static Container Intact(Container c) =>
        c.Damage is null ? c : throw EngineException.Conflict("ContainerDamaged",
            $"container '{c.Record.Name}' is damaged ({c.Damage}); repair its files and restart the daemon, or remove it");

    private string RunDirOf(string name) => _store.RunDirectoryOf(name);

    private static int RootUid(Container c) => c.Record.IdMap?.RootUid ?? 0;
    private static int RootGid(Container c) => c.Record.IdMap?.RootGid ?? 0;

    /// <summary>
    /// Builds the launch plan and runs sc-init; on any failure nothing of the attempt is left.
    /// The intent (Starting) is on disk before the cgroup or the init exist, so a daemon that
    /// dies at any point of the start finds it when it starts again and kills what was left.
    /// </summary>
    private void Launch(Container c)
    {
        string name = c.Record.Name;
        var idmap = c.Record.IdMap;
        string run = RunDirOf(name);
        var before = c.Runtime;
        SafeFd? master = null, slave = null, pidfd = null;
        ConsoleLog? console = null;
        var config = ContainerConfig.Parse(c.Record.Config);
        var nics = config.BridgedNics.ToList();
        var hostInterfaces = new List<HostInterface>();
        Action<int>? attach = nics.Count == 0 ? null : child =>
        {
            foreach (var nic in nics) hostInterfaces.Add(Networks.Attach(name, nic, child));
        };
        HostLimits.CheckStart(name, c.Record.InitKind, RootUid(c), idmap is not null && !config.IsIdmapIsolated);
        try
        {
            _store.WriteRuntime(name, before with { Starting = true });
            StepTrace.Mark("start: intent written");
            TestHooks.Reach("start-intent");
            Directory.CreateDirectory(Path.Combine(run, "rootfs"));
            Directory.CreateDirectory(Path.Combine(run, "layers"));
            var cgroup = _cgroups.Create(name, RootUid(c), RootGid(c));
            var limits = config.Limits;
            string? cpuSet = CpuSetFor(limits, except: null);
            _cgroups.Apply(cgroup, limits, cpuSet);
            (master, slave, string slavePath) = Sys.OpenPty(RootUid(c), RootGid(c) + 5);
            StepTrace.Mark("start: cgroup and console ready");
            int pid;
            bool shifted = idmap is not null && _options.ShiftIds;
            try
            {
                pid = _scInit.Create(PlanFor(c, config, cgroup, slavePath, shifted), slave, attach);
            }
            catch (ScInitException e) when (idmap is not null && !shifted && e.Message.Contains("cannot idmap mount", StringComparison.Ordinal))
            {
                shifted = true;
                DetachAll(hostInterfaces);
                pid = _scInit.Create(PlanFor(c, config, cgroup, slavePath, shifted), slave, attach);
            }
            pidfd = Sys.PidfdOpen(pid);
            StepTrace.Mark("start: init exec'd");
            TestHooks.Reach("start-cloned");
            console = new ConsoleLog(master, slave, Path.Combine(run, "console.log"), _loop);
            master = slave = null;
            var runtime = new RuntimeRecord(true, pid, ProcStat.StartTime(pid), DateTimeOffset.UtcNow, null, null, null, shifted);
            TestHooks.Reach("start-before-state");
            _store.WriteRuntime(name, runtime);
            StepTrace.Mark("start: running recorded");
            TestHooks.Reach("start-after-state");
            var live = new Live(pid, pidfd, cgroup, console) { CpuSet = cpuSet, LastSample = (DateTimeOffset.UtcNow, 0), HostInterfaces = hostInterfaces };
            c.Runtime = runtime;
            c.Live = live;
            _loop.WatchExit(pidfd, status => OnExit(c, live, status));
        }
        catch (Exception e)
        {
            master?.Dispose();
            slave?.Dispose();
            console?.Dispose();
            if (pidfd is not null) KillAndReap(pidfd);
            DetachAll(hostInterfaces);
            string killed = KillLeftovers(name) is int n and > 0 ? $"; {n} process(es) left in its cgroup were killed" : "";
            TryRemoveCgroup(name);
            c.Runtime = before with { Starting = false, Recovery = $"the start failed{(pidfd is null ? "" : "; its init was killed")}{killed}" };
            // On a full disk this fails too: the intent on disk then makes the next daemon start check again.
            try { _store.WriteRuntime(name, c.Runtime); }
            catch (Exception again) when (again is NativeException or IOException) { Console.Error.WriteLine($"container '{name}': {again.Message}"); }
            if (e is EngineException) throw;
            throw new EngineException(FailureKind.Failed, "StartFailed", $"cannot start container '{name}': {e.Message}", e);
        }
    }

    /// <summary>An init of this daemon's whose start failed: killed, and reaped (the daemon is its subreaper).</summary>
    private static void KillAndReap(SafeFd pidfd)
    {
        Sys.PidfdSignal(pidfd, 9);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (Sys.ReapPidfd(pidfd) is null && DateTime.UtcNow < deadline) Thread.Sleep(2);
        pidfd.Dispose();
    }

    /// <summary>Kills whatever runs in the container's cgroups though the daemon tracks no init there; returns how many.</summary>
    private int? KillLeftovers(string name)
    {
        try
        {
            return CgroupKiller.KillAll(_cgroups.Open(name));
        }
        catch (EngineException e)
        {
            Console.Error.WriteLine(e.Message);
            return null;
        }
    }

    private LaunchPlan PlanFor(Container c, ContainerConfig config, ContainerCgroup cgroup, string console, bool shifted)
    {
        var r = c.Record;
        string lower = _images.RootfsOf(r.ImageFingerprint);
        if (shifted) lower = IdShifter.EnsureShifted(lower, r.IdMap!);
        var plan = new LaunchPlan()
            .Add("lower", lower)
            .Add("upper", Path.Combine(_store.DirectoryOf(r.Name), "fs"))
            .Add("layers", Path.Combine(RunDirOf(r.Name), "layers"))
            .Add("target", Path.Combine(RunDirOf(r.Name), "rootfs"))
            .Add("console", console)
            .Add("hostname", r.Name)
            .Add("userns", r.IdMap is null ? 0 : 1)
            .Add("idmap", r.IdMap is not null && !shifted ? 1 : 0)
            .Add("nesting", config.IsNesting ? 1 : 0)
            .Add("uid", 0)
            .Add("gid", 0)
            .Add(cgroup.Join)
            .AddAll("netif", config.BridgedNics.Select(n => n.Name))
            .AddAll("capdrop", DroppedCapabilities.Select(x => x.ToString()))
            .AddAll("sysallow", config.SyscallsAllowed)
            .Add("arg", "/sbin/init")
            .Add("env", "container=systemcontainers")
            .Add("env", "PATH=" + DefaultPath)
            .Add("env", "TERM=linux")
            .AddAll("env", config.Environment.Select(kv => $"{kv.Key}={kv.Value}"));
        if (config.IsLxcfs && Lxcfs.Views() is var (lxcfs, views))
            plan.Add("lxcfsroot", lxcfs).AddAll("lxcfs", views);
        if (r.IdMap is { } m) plan.Add(m);
        // A disk inside another's path goes on after it, so the outer one does not cover it.
        foreach (var disk in config.Disks.OrderBy(d => d.Path, StringComparer.Ordinal)) plan.Add(disk);
        return plan;
    }

    private async Task StopLocked(Container c, bool force, TimeSpan timeout)
    {
        var live = c.Live ?? throw EngineException.Conflict("NotRunning", $"container '{c.Record.Name}' is not running");
        // A frozen init could neither shut down nor die.
        if (live.Frozen) Thaw(live);
        if (!force && timeout > TimeSpan.Zero)
        {
            Sys.PidfdSignal(live.Pidfd, InitKinds.StopSignal(c.Record.InitKind));
            if (await Task.WhenAny(live.Exited.Task, Task.Delay(timeout)) == live.Exited.Task) return;
        }
        Sys.PidfdSignal(live.Pidfd, 9);
        if (await Task.WhenAny(live.Exited.Task, Task.Delay(TimeSpan.FromSeconds(30))) != live.Exited.Task)
            throw new EngineException(FailureKind.Failed, "StopFailed", $"container '{c.Record.Name}' did not exit after SIGKILL");
    }

    /// <summary>Runs when an init exits, stopped or crashed: releases everything, then records how it ended.</summary>
    private void OnExit(Container c, Live live, ExitStatus? status)
    {
        try
        {
            // An adopted init is reaped by its real parent; the kernel still tells how it ended.
            status ??= ExitInfo.Of(live.Pidfd, live.Pid, c.Runtime.PidStartTime);
            long oomKills = OomKillsOf(live);
            live.Dispose();
            lock (live.HostInterfaces) DetachAll(live.HostInterfaces);
            TryRemoveCgroup(c.Record.Name);
            c.Runtime = c.Runtime with
            {
                Running = false, Pid = null, PidStartTime = null, StoppedAt = DateTimeOffset.UtcNow,
                LastExitCode = status?.Code, LastExitSignal = status?.Signal, OomKills = oomKills,
            };
            c.Live = null;
            _store.WriteRuntime(c.Record.Name, c.Runtime);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"cleanup of container '{c.Record.Name}' failed: {e.Message}");
        }
        finally
        {
            c.Live = null;
            // The exit is told before whoever waits on it goes on: a stop's container-stopped comes after it.
            try { Raise("container-exited", c.Record.Name); }
            finally { live.Exited.TrySetResult(); }
        }
    }

    /// <summary>The run's OOM kills, read before its cgroup goes (an OOM kill of init ends the run that counted it).</summary>
    private long OomKillsOf(Live live)
    {
        try { return _cgroups.ReadStats(live.Cgroup).OomKills; }
        catch (Exception e) when (e is IOException or FormatException or EngineException) { return 0; }
    }

    private void DetachAll(List<HostInterface> hostInterfaces)
    {
        foreach (var host in hostInterfaces) Networks.Detach(host);
        hostInterfaces.Clear();
    }


    /// <summary>
    /// Completes a config's NICs and records the result: a first config without any NIC gets
    /// eth0 on the default network; a bridged NIC without a network joins the default one
    /// (made now if need be), and one without a MAC gets a random one, kept from then on.
    /// </summary>
    private ContainerConfig WithNicDefaults(ContainerConfig config, bool firstConfig)
    {
        var raw = new Dictionary<string, string>(config.Raw, StringComparer.Ordinal);
        if (firstConfig && !raw.Keys.Any(NicSpec.IsNicKey) && _options.DefaultNetwork is not null)
            raw[NicSpec.Key("eth0", "type")] = "bridged";
        foreach (var nic in ContainerConfig.Parse(raw).BridgedNics)
        {
            raw[NicSpec.Key(nic.Device, "type")] = "bridged";
            if (nic.Network is null) raw[NicSpec.Key(nic.Device, "network")] = Networks.EnsureDefault();
            else if (nic.Network == _options.DefaultNetwork) Networks.EnsureDefault();
            if (nic.HwAddr is null) raw[NicSpec.Key(nic.Device, "hwaddr")] = NicSpec.NewMac();
        }
        return ContainerConfig.Parse(raw);
    }

    private void TryRemoveCgroup(string name)
    {
        try { _cgroups.Remove(name); }
        catch (EngineException e) { Console.Error.WriteLine(e.Message); }
    }

    /// <summary>
    /// Reads one container from disk; a running one whose pid and start time still match is
    /// adopted again. A container whose files cannot be read is listed with status Error and
    /// the reason, its files left as they are, and never stops the others from loading.
    /// </summary>
    private void Load(string name)
    {
        ContainerRecord record;
        try
        {
            record = _store.ReadConfig(name);
        }
        catch (EngineException e) when (e.Reason == "DamagedState")
        {
            var placeholder = new ContainerRecord(name, "", null, new Dictionary<string, string>(), Directory.GetCreationTimeUtc(_store.DirectoryOf(name)),
                null, "", Guid.NewGuid());
            MarkDamaged(new Container(placeholder, RuntimeRecord.NeverStarted), e.Message);
            return;
        }
        if (record.Id == Guid.Empty) record = record with { Id = Guid.NewGuid() };
        var c = new Container(record, RuntimeRecord.NeverStarted);
        try
        {
            var config = ContainerConfig.Parse(record.Config);
            Networks.Restore(name, config.Nics);
            c.Runtime = _store.ReadRuntime(name);
            _containers[name] = c;
            Reconcile(c, config);
        }
        catch (Exception e) when (e is EngineException or NativeException or IOException)
        {
            MarkDamaged(c, e.Message);
        }
    }

    private void MarkDamaged(Container c, string reason)
    {
        c.Damage = reason;
        _containers[c.Record.Name] = c;
        Console.Error.WriteLine($"container '{c.Record.Name}' is damaged and kept as it is: {reason}");
    }

    /// <summary>A loaded container's init adopted when it still runs; otherwise it is recorded as stopped.</summary>
    private void Reconcile(Container c, ContainerConfig config)
    {
        string name = c.Record.Name;
        var runtime = c.Runtime;
        // A zombie init has exited: its parent has just not reaped it yet.
        if (runtime.Running && runtime.Pid is int pid && runtime.PidStartTime is ulong start && ProcStat.StartTime(pid) == start && ProcStat.IsRunning(pid))
        {
            var pidfd = Sys.PidfdOpen(pid);
            try
            {
                var cgroup = _cgroups.Open(name);
                var live = new Live(pid, pidfd, cgroup, ReattachConsole(c, pidfd))
                {
                    Frozen = _cgroups.ReadStats(cgroup).Frozen,
                    CpuSet = config.Limits.CpuSet,
                    HostInterfaces = Networks.HostInterfacesOf(name, config.Nics, pid),
                    LastSample = (runtime.StartedAt ?? DateTimeOffset.UtcNow, 0),
                };
                c.Live = live;
                c.Runtime = runtime with { Recovery = $"init {pid} adopted at daemon start" };
                TryWriteRuntime(c);
                _loop.WatchExit(pidfd, status => OnExit(c, live, status));
                return;
            }
            catch (Exception e) when (e is NativeException or EngineException or IOException && !ProcStat.IsRunning(pid))
            {
                // It exited while being adopted: it is a stopped container, not a damaged one.
                c.Live = null;
                pidfd.Dispose();
            }
        }
        int killed = KillLeftovers(name) ?? 0;
        TryRemoveCgroup(name);
        if (!runtime.Running && !runtime.Starting && killed == 0) return;
        string what = runtime.Starting ? "a start was cut short by the daemon's death"
            : runtime.Running ? $"init {runtime.Pid} had exited while no daemon watched it" : "it was stopped";
        c.Runtime = runtime with
        {
            Running = false, Starting = false, Pid = null, PidStartTime = null,
            StoppedAt = runtime.Running || runtime.Starting ? DateTimeOffset.UtcNow : runtime.StoppedAt,
            Recovery = $"{what}; {killed} process(es) left in its cgroup were killed at daemon start",
        };
        TryWriteRuntime(c);
    }

    /// <summary>A record that says what reconciliation did; a failed write leaves the older record, which reconciles the same way again.</summary>
    private void TryWriteRuntime(Container c)
    {
        try { _store.WriteRuntime(c.Record.Name, c.Runtime); }
        catch (Exception e) when (e is NativeException or IOException) { Console.Error.WriteLine($"container '{c.Record.Name}': {e.Message}"); }
    }

    /// <summary>
    /// The previous daemon took the console's master with it, which hangs the old pty up for
    /// good (a getty on it would restart in a loop). A new pty goes over /dev/console instead.
    /// </summary>
    private ConsoleLog? ReattachConsole(Container c, SafeFd pidfd)
    {
        try
        {
            var (master, slave, slavePath) = Sys.OpenPty(RootUid(c), RootGid(c) + 5);
            try
            {
                _scInit.AttachConsole(new LaunchPlan().Add("console", slavePath), pidfd);
                return new ConsoleLog(master, slave, Path.Combine(RunDirOf(c.Record.Name), "console.log"), _loop);
            }
            catch
            {
                master.Dispose();
                slave.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is ScInitException or NativeException)
        {
            Console.Error.WriteLine($"container '{c.Record.Name}' keeps running without a console: {e.Message}");
            return null;
        }
    }

    private ContainerView View(Container c)
    {
        var r = c.Record;
        var rt = c.Runtime;
        var live = c.Live;
        var (v4, v6) = live is null ? ([], []) : NetnsAddresses.Read(live.Pid);
        var status = c.Damage is not null ? ContainerStatus.Error
            : live is null ? ContainerStatus.Stopped : live.Frozen ? ContainerStatus.Frozen : ContainerStatus.Running;
        return new ContainerView(r.Name, status, r.ImageFingerprint, r.ImageAlias, live?.Pid, r.Created, rt.StartedAt, rt.StoppedAt,
            rt.LastExitCode, rt.LastExitSignal, r.IdMap is null, r.InitKind, r.Config, v4, v6, r.Id, c.Damage, rt.Recovery);
    }

    private void Raise(string action, string name) => Events?.Invoke(new EngineEvent(action, name, DateTimeOffset.UtcNow));

    /// <summary>Daemon shutdown: containers keep running (a new daemon adopts them); an empty cgroup group is removed.</summary>
    public void Dispose()
    {
        Lxcfs.Dispose();
        Networks.Dispose();
        _loop.Dispose();
        _cgroups.ReleaseGroup();
        _scInit.Dispose();
    }
}
