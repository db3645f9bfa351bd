using Microsoft.AspNetCore.Connections;
using System.Net.Sockets;
using SystemContainers.Api;
using SystemContainers.Daemon;
using SystemContainers.Engine;
using SystemContainers.Engine.Host;
using SystemContainers.Engine.Interop;

DaemonOptions options;
try
{
    options = DaemonOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"systemcontainerd: {e.Message}");
    return 2;
}
if (Tmds.Linux.LibC.geteuid() != 0)
{
    Console.Error.WriteLine("systemcontainerd: must run as root");
    return 1;
}
Daemonization.DetachAndLog(options.LogFile);
string? notifySocket = Daemonization.TakeNotifySocket();

foreach (var dir in new[] { options.Engine.StateDir, options.Engine.RunDir, options.Engine.CacheDir })
{
    Directory.CreateDirectory(dir);
    var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    // dnsmasq, running as nobody, reaches its hosts file under run/networks; nothing here is listable.
    if (dir == options.Engine.RunDir) mode |= UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    File.SetUnixFileMode(dir, mode);
}
if (!Daemonization.ClaimSocket(options.Socket))
{
    Console.Error.WriteLine($"systemcontainerd: another daemon answers on {options.Socket}");
    return 1;
}

Engine opened;
try
{
    opened = Engine.Open(options.Engine, DaemonLog.Info);
}
catch (EngineException e)
{
    // A host or an install the daemon cannot run on (no cgroup hierarchy mounted, no sc-init) is a clear refusal, not a crash.
    Console.Error.WriteLine($"systemcontainerd: {e.Message}");
    return 1;
}
using var engine = opened;
var containers = engine.Containers;
var images = engine.Images;
var operations = new OperationRegistry();
var events = new EventHub(containers, operations);

// The daemon keeps no directory busy (an unmount, a removed clone) and watches no files: ASP.NET
// would otherwise watch its content root, by default the cwd, recursively for config changes.
Directory.SetCurrentDirectory("/");
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
{
    ContentRootPath = AppContext.BaseDirectory,
    Args = ["--hostBuilder:reloadConfigOnChange=false"],
});
builder.Logging.ClearProviders();
builder.Services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPool.Factory>();
builder.WebHost.ConfigureKestrel(k =>
{
    k.ListenUnixSocket(options.Socket);
    // The largest legitimate body is an exec of ExecLimits.MaxTotalBytes, JSON-escaped.
    k.Limits.MaxRequestBodySize = RestApi.MaxBodyBytes;
});
var app = builder.Build();
Pipeline.UseCommon(app, app.Lifetime.ApplicationStopping);
var imageSecrets = new ImageSecrets(operations);
var migrations = new MigrationSources(operations);
var api = new RestApi(options, containers, images, operations, events, imageSecrets, migrations);
using var remote = new SystemContainers.Engine.Remote.RemoteAccess(options.Engine.StateDir);
HttpsListener? https = null;
var remoteApi = new RemoteApi(remote, api, () => https!);
void MapRoutes(WebApplication a)
{
    remoteApi.Map(a);
    api.Map(a);
}
https = new HttpsListener(remote, new TrustGate(remote, imageSecrets, migrations), MapRoutes, app.Lifetime.ApplicationStopping);
await using var httpsOwner = https;
MapRoutes(app);

await app.StartAsync();
try
{
    await remoteApi.Apply(options.HttpsAddress ?? remote.Config.HttpsAddress);
}
catch (EngineException e)
{
    // The unix socket still serves, so an admin can set another address.
    DaemonLog.Info($"HTTPS is off: {e.Message}");
}
File.SetUnixFileMode(options.Socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
DaemonLog.Info($"systemcontainerd {Environment.ProcessId} listening on {options.Socket} (state {options.Engine.StateDir}, cgroup {containers.CgroupVersion})");
Daemonization.NotifyReady(notifySocket);
// The probes take a moment; the API answers meanwhile.
_ = Task.Run(() => HostCheckLog.Write(new HostCheck(options.Engine)));
_ = Task.Run(() => Autostart.RunAsync(containers, DaemonLog.Info, app.Lifetime.ApplicationStopping));
await app.WaitForShutdownAsync();
return 0;

/// <summary>The host check at start: a line for each warning or failure, then the counts.</summary>
static class HostCheckLog
{
    public static void Write(HostCheck check)
    {
        try
        {
            var findings = check.Run(HostCheck.DefaultContainers);
            foreach (var f in findings.Where(f => f.Status is HostCheckStatus.Warning or HostCheckStatus.Failed))
                DaemonLog.Info($"host check: {f.Status.ToString().ToLowerInvariant()}: {f.Name} is {f.Value}{(f.Needed is null ? "" : $" (needed {f.Needed})")}: {f.Detail}");
            DaemonLog.Info($"host check: {findings.Count(f => f.Status is HostCheckStatus.Ok or HostCheckStatus.Info)} ok, " +
                $"{findings.Count(f => f.Status == HostCheckStatus.Warning)} warnings, {findings.Count(f => f.Status == HostCheckStatus.Failed)} failed " +
                $"(Test-SystemContainerHost for all, judged for {HostCheck.DefaultContainers} containers)");
        }
        catch (Exception e)
        {
            DaemonLog.Info($"host check: cannot run: {e.Message}");
        }
    }
}

static class Daemonization
{
    /// <summary>
    /// With a log file: stdio to the log and /dev/null, and a session of its own, so the daemon
    /// outlives the shell that started it and holds none of that shell's pipes open.
    /// </summary>
    public static void DetachAndLog(string? logFile)
    {
        CloseInheritedDescriptors();
        if (logFile is null) return;
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logFile))!);
        var original = Enumerable.Range(0, 3).Select(fd => Link(fd)).Where(l => l is not null).ToHashSet();
        using var log = Sys.Open(logFile, Tmds.Linux.LibC.O_WRONLY | Tmds.Linux.LibC.O_CREAT | Tmds.Linux.LibC.O_TRUNC, 0x180);
        using var devnull = Sys.Open("/dev/null", Tmds.Linux.LibC.O_RDONLY);
        // The runtime keeps its own duplicates of stdio; they must not keep the caller's pipe open either.
        foreach (int fd in OpenDescriptors().Where(fd => fd > 2 && fd != log.Fd && fd != devnull.Fd && original.Contains(Link(fd))))
            Tmds.Linux.LibC.dup3(log.Fd, fd, Tmds.Linux.LibC.O_CLOEXEC);
        Tmds.Linux.LibC.dup2(devnull.Fd, 0);
        Tmds.Linux.LibC.dup2(log.Fd, 1);
        Tmds.Linux.LibC.dup2(log.Fd, 2);
        Tmds.Linux.LibC.setsid();
    }

    /// <summary>Descriptors without close-on-exec above stdio were leaked to us by whoever started us (the runtime opens its own with it).</summary>
    private static void CloseInheritedDescriptors()
    {
        foreach (int fd in OpenDescriptors().Where(fd => fd > 2))
        {
            int flags = Tmds.Linux.LibC.fcntl(fd, Tmds.Linux.LibC.F_GETFD, 0);
            if (flags >= 0 && (flags & Tmds.Linux.LibC.FD_CLOEXEC) == 0) Tmds.Linux.LibC.close(fd);
        }
    }

    private static List<int> OpenDescriptors() =>
        Directory.GetFiles("/proc/self/fd").Select(f => int.TryParse(Path.GetFileName(f), out int fd) ? fd : -1).Where(fd => fd >= 0).ToList();

    private static string? Link(int fd) => new FileInfo($"/proc/self/fd/{fd}").LinkTarget;

    /// <summary>systemd's notify socket (a Type=notify unit sets it), kept from every process the daemon starts.</summary>
    public static string? TakeNotifySocket()
    {
        string? target = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        Environment.SetEnvironmentVariable("NOTIFY_SOCKET", null);
        return string.IsNullOrEmpty(target) ? null : target;
    }

    /// <summary>
    /// Tells systemd that the socket answers, so units ordered after the daemon start only then.
    /// Outside systemd there is nobody to tell.
    /// </summary>
    public static void NotifyReady(string? target)
    {
        if (target is null) return;
        // A leading '@' names an abstract socket.
        if (target[0] == '@') target = "\0" + target[1..];
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(target));
            socket.Send(System.Text.Encoding.ASCII.GetBytes($"READY=1\nMAINPID={Environment.ProcessId}"));
        }
        catch (SocketException e)
        {
            Console.Error.WriteLine($"systemcontainerd: cannot notify systemd on {target}: {e.SocketErrorCode}");
        }
    }

    /// <summary>Removes a stale socket; false when a live daemon still answers on it.</summary>
    public static bool ClaimSocket(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        if (!File.Exists(path)) return true;
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return false;
        }
        catch (SocketException)
        {
            File.Delete(path);
            return true;
        }
    }
}
