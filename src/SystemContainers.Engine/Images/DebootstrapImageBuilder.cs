using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Builds a Debian or Ubuntu system with systemd by debootstrap. The resulting tarball is kept
/// in the cache directory under a key made of every input, so the same request is instant the
/// second time (on a fresh state directory too).
/// </summary>
public static partial class DebootstrapImageBuilder
{
    private const string BuilderVersion = "2";
    private const string Includes = "systemd,systemd-sysv,systemd-resolved,dbus,procps,iproute2,iputils-ping,udev";

    // Every veth NIC the daemon gives the container asks for DHCP (and takes router advertisements).
    private const string NetworkUnit = """
        [Match]
        Kind=veth

        [Network]
        DHCP=yes

        [DHCPv4]
        UseDomains=true

        """;

    [GeneratedRegex("^[a-z][a-z0-9-]{1,31}\\z")]
    private static partial Regex ReleasePattern();

    public static string CacheKey(string release, string mirror) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            $"debootstrap|{BuilderVersion}|{release}|{mirror}|minbase|{Includes}|{System.Runtime.InteropServices.RuntimeInformation.OSArchitecture}")));

    /// <summary>Returns the cached tarball for (release, mirror), running debootstrap when it is missing.</summary>
    public static async Task<string> BuildAsync(string release, string? mirror, string cacheDir, IProgress<string>? progress, CancellationToken ct)
    {
        if (!ReleasePattern().IsMatch(release))
            throw EngineException.Invalid("InvalidRelease", $"release '{release}' is not a distribution code name such as bookworm");
        mirror ??= HostMirror()
            ?? throw EngineException.Invalid("NoMirror", "no Debian mirror is configured in /etc/apt; pass -Mirror");
        if (!Uri.TryCreate(mirror, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https" && uri.Scheme != "file"))
            throw EngineException.Invalid("InvalidMirror", $"mirror '{mirror}' is not an http, https or file URL");
        if (!File.Exists("/usr/sbin/debootstrap"))
            throw EngineException.NotFound("DebootstrapNotFound", "debootstrap is not installed; install the debootstrap package");

        string dir = Path.Combine(cacheDir, "debootstrap");
        Directory.CreateDirectory(dir);
        string tarball = Path.Combine(dir, CacheKey(release, mirror) + ".tar");
        if (File.Exists(tarball))
        {
            progress?.Report($"using cached {release} build");
            return tarball;
        }
        string work = Path.Combine(dir, $".build-{Guid.NewGuid():N}");
        try
        {
            string rootfs = Path.Combine(work, "rootfs");
            Directory.CreateDirectory(rootfs);
            await RunDebootstrap(["--variant=minbase", $"--include={Includes}", release, rootfs, mirror], progress, ct);
            // The host's name must not override the container's; systemd keeps the one set at start.
            File.Delete(Path.Combine(rootfs, "etc", "hostname"));
            ConfigureNetwork(rootfs);
            progress?.Report("packing");
            await RunTar(["--create", "--file", Path.Combine(work, "rootfs.tar"), "--directory", rootfs,
                "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls", "--sort=name", "."], ct);
            File.Move(Path.Combine(work, "rootfs.tar"), tarball);
            return tarball;
        }
        finally
        {
            if (Directory.Exists(work)) Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>systemd-networkd configures the NICs by DHCP and systemd-resolved answers DNS, as in LXD's images.</summary>
    private static void ConfigureNetwork(string rootfs)
    {
        string etc = Path.Combine(rootfs, "etc");
        Directory.CreateDirectory(Path.Combine(etc, "systemd", "network"));
        File.WriteAllText(Path.Combine(etc, "systemd", "network", "50-systemcontainers.network"), NetworkUnit);
        foreach (var (wants, unit) in new[]
        {
            ("multi-user.target.wants", "systemd-networkd.service"), ("sockets.target.wants", "systemd-networkd.socket"),
            ("multi-user.target.wants", "systemd-resolved.service"),
        })
        {
            string dir = Path.Combine(etc, "systemd", "system", wants);
            Directory.CreateDirectory(dir);
            string link = Path.Combine(dir, unit);
            File.Delete(link);
            File.CreateSymbolicLink(link, "/lib/systemd/system/" + unit);
        }
        string resolv = Path.Combine(etc, "resolv.conf");
        File.Delete(resolv);
        File.CreateSymbolicLink(resolv, "../run/systemd/resolve/stub-resolv.conf");
    }

    private static async Task RunDebootstrap(IReadOnlyList<string> args, IProgress<string>? progress, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("/usr/sbin/debootstrap", args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi)!;
        var tail = new Queue<string>();
        async Task Pump(StreamReader reader)
        {
            while (await reader.ReadLineAsync(ct) is string line)
            {
                lock (tail)
                {
                    tail.Enqueue(line);
                    if (tail.Count > 20) tail.Dequeue();
                }
                if (line.StartsWith("I: ", StringComparison.Ordinal)) progress?.Report(line[3..]);
            }
        }
        try
        {
            await Task.WhenAll(Pump(p.StandardOutput), Pump(p.StandardError), p.WaitForExitAsync(ct));
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw;
        }
        if (p.ExitCode != 0)
            throw new EngineException(FailureKind.Failed, "DebootstrapFailed",
                $"debootstrap {string.Join(' ', args)} failed with exit {p.ExitCode}: {string.Join('\n', tail)}");
    }

    /// <summary>The first Debian archive URI configured for apt on this host (deb822 or one-line format).</summary>
    public static string? HostMirror(string aptDir = "/etc/apt")
    {
        var files = new List<string>();
        string list = Path.Combine(aptDir, "sources.list");
        if (File.Exists(list)) files.Add(list);
        string listDir = Path.Combine(aptDir, "sources.list.d");
        if (Directory.Exists(listDir))
            files.AddRange(Directory.GetFiles(listDir).Where(f => f.EndsWith(".sources") || f.EndsWith(".list")).Order());
        foreach (var file in files)
            foreach (var raw in File.ReadLines(file))
            {
                string line = raw.Trim();
                string? uri = null;
                if (line.StartsWith("URIs:", StringComparison.OrdinalIgnoreCase)) uri = line[5..].Trim().Split(' ')[0];
                else if (line.StartsWith("deb ", StringComparison.Ordinal))
                    uri = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(p => p.Contains("://"));
                if (uri is not null && !uri.Contains("security", StringComparison.Ordinal) &&
                    (uri.EndsWith("/debian", StringComparison.Ordinal) || uri.EndsWith("/debian/", StringComparison.Ordinal) ||
                     uri.EndsWith("/ubuntu", StringComparison.Ordinal) || uri.EndsWith("/ubuntu/", StringComparison.Ordinal)))
                    return uri;
            }
        return null;
    }

    private static async Task RunTar(IReadOnlyList<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("tar", args)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        psi.Environment["LC_ALL"] = "C";
        using var tar = Process.Start(psi)!;
        var stderr = tar.StandardError.ReadToEndAsync(ct);
        await tar.StandardOutput.ReadToEndAsync(ct);
        await tar.WaitForExitAsync(ct);
        if (tar.ExitCode != 0)
            throw new EngineException(FailureKind.Failed, "DebootstrapFailed", $"cannot run tar {string.Join(' ', args)}: {(await stderr).Trim()}");
    }
}
