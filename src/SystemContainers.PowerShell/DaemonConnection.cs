using System.Diagnostics;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// The module's one client. The socket comes from SYSTEMCONTAINERS_SOCKET (else the run
/// directory's default); when nothing answers there, the bundled daemon is started, unless
/// SYSTEMCONTAINERS_NO_AUTOSTART is 1 (test runs, whose daemons live in network namespaces
/// of their own: a daemon started in their place would work on the host's network).
/// </summary>
internal static class DaemonConnection
{
    private static readonly object Gate = new();
    private static SystemContainersClient? _client;
    private static bool _answered;

    public static string RunDir => Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_RUN_DIR") ?? "/run/systemcontainers";

    public static string SocketPath =>
        Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_SOCKET") ?? Path.Combine(RunDir, "systemcontainerd.sock");

    public static string DaemonPath => Path.Combine(Path.GetDirectoryName(typeof(DaemonConnection).Assembly.Location)!, "daemon", "systemcontainerd");

    /// <summary>The client for the current socket; the daemon is started on first use when it does not answer.</summary>
    public static SystemContainersClient Get(CancellationToken ct)
    {
        lock (Gate)
        {
            string socket = SocketPath;
            // While another remote is the default, the local daemon's objects say "local", so piped on they come back here.
            string? name = RemoteStore.DefaultRemote is null ? null : RemoteStore.Local;
            if (_client?.SocketPath != socket || _client.RemoteName != name)
            {
                _client?.Dispose();
                _client = new SystemContainersClient(socket, name);
                _answered = false;
            }
            if (!_answered)
            {
                if (!_client.PingAsync(ct).GetAwaiter().GetResult()) StartDaemon(_client, ct);
                _answered = true;
            }
            return _client;
        }
    }

    /// <summary>A client only when a daemon already answers (tab completion must never start one).</summary>
    public static SystemContainersClient? IfRunning()
    {
        lock (Gate)
        {
            if (_client is not null && _answered) return _client;
        }
        var probe = new SystemContainersClient(SocketPath);
        if (probe.PingAsync().GetAwaiter().GetResult()) return probe;
        probe.Dispose();
        return null;
    }

    /// <summary>Called after a request could not reach the daemon, so the next one checks again.</summary>
    public static void Forget()
    {
        lock (Gate) _answered = false;
    }

    private static void StartDaemon(SystemContainersClient client, CancellationToken ct)
    {
        if (Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_NO_AUTOSTART") == "1")
            throw new SystemContainersApiException(503, "DaemonNotRunning",
                $"systemcontainerd is not answering on {client.SocketPath}, and SYSTEMCONTAINERS_NO_AUTOSTART=1 forbids starting one");
        if (!File.Exists(DaemonPath))
            throw new SystemContainersApiException(503, "DaemonNotFound", $"systemcontainerd is not answering on {client.SocketPath} and {DaemonPath} does not exist; run ./build.ps1 build");
        if (InstalledUnit() is string unit && client.SocketPath == DefaultSocket)
        {
            StartUnit(client, unit, ct);
            return;
        }
        string log = Path.Combine(RunDir, "systemcontainerd.log");
        var psi = new ProcessStartInfo(DaemonPath, ["--log-file", log, "--socket", client.SocketPath])
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var daemon = Process.Start(psi)!;
        var deadline = DateTime.UtcNow + StartTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (client.PingAsync(ct).GetAwaiter().GetResult()) return;
            if (daemon.HasExited)
            {
                string why = daemon.StandardError.ReadToEnd().Trim();
                if (why.Length == 0 && File.Exists(log)) why = File.ReadAllText(log).Trim();
                throw new SystemContainersApiException(503, "DaemonStartFailed", $"systemcontainerd exited with {daemon.ExitCode}: {why}");
            }
            Thread.Sleep(50);
        }
        throw new SystemContainersApiException(503, "DaemonStartFailed", $"systemcontainerd did not answer on {client.SocketPath} within {StartTimeout.TotalSeconds} s; see {log}");
    }

    // Generous: a first start on a slow or emulated machine takes tens of seconds.
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private const string DefaultSocket = "/run/systemcontainers/systemcontainerd.sock";

    /// <summary>
    /// The installed systemd unit, when systemd is PID 1 (sd_booted's test): the daemon then runs as
    /// the service an admin manages with systemctl, not as a child of this pwsh's login session.
    /// </summary>
    private static string? InstalledUnit()
    {
        if (!Directory.Exists("/run/systemd/system")) return null;
        string[] dirs = ["/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];
        return dirs.Any(d => File.Exists(Path.Combine(d, "systemcontainerd.service"))) ? "systemcontainerd.service" : null;
    }

    private static void StartUnit(SystemContainersClient client, string unit, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("systemctl", ["start", unit]) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        using (var systemctl = Process.Start(psi)!)
        {
            string error = systemctl.StandardError.ReadToEnd().Trim();
            systemctl.WaitForExit();
            if (systemctl.ExitCode != 0)
                throw new SystemContainersApiException(503, "DaemonStartFailed", $"systemctl start {unit} failed with {systemctl.ExitCode}: {error} (see journalctl -u {unit})");
        }
        var deadline = DateTime.UtcNow + StartTimeout;
        while (DateTime.UtcNow < deadline)
        {
            if (client.PingAsync(ct).GetAwaiter().GetResult()) return;
            Thread.Sleep(50);
        }
        throw new SystemContainersApiException(503, "DaemonStartFailed", $"{unit} started but does not answer on {client.SocketPath} within {StartTimeout.TotalSeconds} s (see journalctl -u {unit})");
    }
}
