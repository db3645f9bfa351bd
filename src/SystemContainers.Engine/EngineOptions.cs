namespace SystemContainers.Engine;

/// <summary>Where the engine keeps things and which helpers it runs; every path is overridable so daemons run side by side.</summary>
public sealed record EngineOptions
{
    public required string StateDir { get; init; }
    public required string RunDir { get; init; }
    public required string CacheDir { get; init; }
    public required string ScInitPath { get; init; }

    /// <summary>The directory under the daemon's own cgroup that holds container cgroups.</summary>
    public string CgroupGroup { get; init; } = "systemcontainers";

    public string BusyboxPath { get; init; } = "/bin/busybox";

    /// <summary>Skip idmapped mounts and use shifted image copies (hosts or file systems without idmap support).</summary>
    public bool ShiftIds { get; init; }

    /// <summary>The managed network created on first use for containers that name no NIC; null gives them none.</summary>
    public string? DefaultNetwork { get; init; } = "scbr0";

    public string DnsmasqPath { get; init; } = "/usr/sbin/dnsmasq";

    /// <summary>The lxcfs the daemon runs when the host mounts none at /var/lib/lxcfs.</summary>
    public string LxcfsPath { get; init; } = DefaultLxcfsPath;

    public const string DefaultLxcfsPath = "/usr/bin/lxcfs";

    public string NftPath { get; init; } = "/usr/sbin/nft";

    /// <summary>The criu command (a packaged binary, or the wrapper build.ps1 makes around Debian sid's criu).</summary>
    public string CriuPath { get; init; } = DefaultCriuPath;

    public const string DefaultCriuPath = "/usr/sbin/criu";

    /// <summary>The nftables table (family inet) this daemon owns; nothing else in the firewall is touched.</summary>
    public string NftTable { get; init; } = "systemcontainers";

    /// <summary>What one image import may unpack (bytes of member data, tar headers).</summary>
    public Images.ImportLimits ImportLimits { get; init; } = Images.ImportLimits.Default;
}
