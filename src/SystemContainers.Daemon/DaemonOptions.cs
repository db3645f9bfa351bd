using SystemContainers.Engine;
using SystemContainers.Engine.Images;

namespace SystemContainers.Daemon;

/// <summary>
/// Command line (--state-dir, --run-dir, --cache-dir, --socket, --sc-init, --log-file, --shift-ids,
/// --default-network NAME|none, --lxcfs PATH: the lxcfs to run where the host mounts none,
/// --criu PATH: the criu command (else SYSTEMCONTAINERS_CRIU, else the newest criu build.ps1 unpacked under the cache directory, else /usr/sbin/criu), --sysctl-file PATH: where Test-SystemContainerHost -Fix keeps the limits it raises,
/// --image-max-bytes N and --image-max-entries N: what one image import may unpack, 32 GiB and 2000000 by default,
/// --https-address ADDR: sets core.https_address, kept in state/server.json; "" turns HTTPS off)
/// over environment (SYSTEMCONTAINERS_STATE_DIR, _RUN_DIR, _CACHE_DIR, _SOCKET) over defaults.
/// </summary>
public sealed record DaemonOptions(EngineOptions Engine, string Socket, string? LogFile, string SysctlFile, string? HttpsAddress = null)
{
    public static DaemonOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        bool shift = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--shift-ids") { shift = true; continue; }
            if (!a.StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"unknown or incomplete option '{a}'");
            values[a[2..]] = args[++i];
        }
        string Get(string key, string env, string fallback) =>
            values.GetValueOrDefault(key) ?? Environment.GetEnvironmentVariable(env) ?? fallback;
        string state = Path.GetFullPath(Get("state-dir", "SYSTEMCONTAINERS_STATE_DIR", "/var/lib/systemcontainers"));
        string run = Path.GetFullPath(Get("run-dir", "SYSTEMCONTAINERS_RUN_DIR", "/run/systemcontainers"));
        string cache = Path.GetFullPath(Get("cache-dir", "SYSTEMCONTAINERS_CACHE_DIR", "/var/cache/systemcontainers"));
        string socket = Path.GetFullPath(Get("socket", "SYSTEMCONTAINERS_SOCKET", Path.Combine(run, "systemcontainerd.sock")));
        string scInit = Get("sc-init", "SYSTEMCONTAINERS_SC_INIT", Path.Combine(AppContext.BaseDirectory, "sc-init"));
        var unknown = values.Keys.Except(["state-dir", "run-dir", "cache-dir", "socket", "sc-init", "log-file", "cgroup-group", "default-network", "sysctl-file", "lxcfs", "criu",
            "image-max-bytes", "image-max-entries", "https-address"]).ToList();
        if (unknown.Count > 0) throw new ArgumentException($"unknown option --{unknown[0]}");
        // Daemons with their own state directory get their own cgroup group, so test daemons never collide.
        string group = values.GetValueOrDefault("cgroup-group")
            ?? (state == "/var/lib/systemcontainers" ? "systemcontainers"
                : "systemcontainers-" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(state)))[..8]);
        string defaultNetwork = values.GetValueOrDefault("default-network") ?? "scbr0";
        long Positive(string key, long fallback) =>
            values.GetValueOrDefault(key) is not string v ? fallback
            : long.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long n) && n > 0 ? n
            : throw new ArgumentException($"--{key} '{v}' is not a positive whole number");
        var limits = new ImportLimits(Positive("image-max-bytes", ImportLimits.DefaultMaxBytes), Positive("image-max-entries", ImportLimits.DefaultMaxEntries));
        return new DaemonOptions(new EngineOptions
        {
            StateDir = state, RunDir = run, CacheDir = cache, ScInitPath = scInit, ShiftIds = shift, CgroupGroup = group,
            DefaultNetwork = defaultNetwork == "none" ? null : defaultNetwork, ImportLimits = limits,
            LxcfsPath = values.GetValueOrDefault("lxcfs") ?? EngineOptions.DefaultLxcfsPath,
            CriuPath = Get("criu", "SYSTEMCONTAINERS_CRIU", UnpackedCriu(cache) ?? EngineOptions.DefaultCriuPath),
        }, socket, values.GetValueOrDefault("log-file"), Path.GetFullPath(values.GetValueOrDefault("sysctl-file") ?? "/etc/sysctl.d/60-systemcontainers.conf"),
            values.GetValueOrDefault("https-address"));
    }

    /// <summary>
    /// The criu that build.ps1 unpacked (cache/criu/VERSION/criu, made only where the host's criu is
    /// missing or too old), the newest first; null when there is none.
    /// </summary>
    private static string? UnpackedCriu(string cache)
    {
        string dir = Path.Combine(cache, "criu");
        if (!Directory.Exists(dir)) return null;
        return Directory.EnumerateDirectories(dir)
            .Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Select(d => Path.Combine(d, "criu"))
            .Where(File.Exists)
            .OrderByDescending(p => Version.TryParse(Path.GetFileName(Path.GetDirectoryName(p))!.Split('-')[0], out var v) ? v : new Version(0, 0))
            .FirstOrDefault();
    }
}
