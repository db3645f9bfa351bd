using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Runtime.InteropServices;
using SystemContainers.Engine.Images;

namespace SystemContainers.Engine.Tests;

public partial class TarballValidatorTests
{
    private static string WriteTar(TempDir dir, string file, params (TarEntryType Type, string Name, string? Link)[] entries)
    {
        string path = dir.Combine(file);
        using (var stream = File.Create(path))
        using (var writer = new TarWriter(stream, TarEntryFormat.Pax))
        {
            foreach (var (type, name, link) in entries)
            {
                var e = new PaxTarEntry(type, name) { Mode = (UnixFileMode)0x1ed };
                if (link is not null) e.LinkName = link;
                if (type == TarEntryType.RegularFile) e.DataStream = new MemoryStream("data"u8.ToArray());
                writer.WriteEntry(e);
            }
        }
        return path;
    }

    private static readonly (TarEntryType, string, string?)[] Rootfs =
    [
        (TarEntryType.Directory, "./", null), (TarEntryType.Directory, "sbin/", null), (TarEntryType.Directory, "bin/", null),
        (TarEntryType.RegularFile, "bin/busybox", null), (TarEntryType.SymbolicLink, "sbin/init", "../bin/busybox"),
        (TarEntryType.SymbolicLink, "etc-link", "/etc"), (TarEntryType.HardLink, "bin/sh", "bin/busybox"),
    ];

    [Fact]
    public void AcceptsAPlainRootfsWithAbsoluteSymlinkTargets()
    {
        using var dir = new TempDir();
        Assert.Equal(Rootfs.Length, TarballValidator.Validate(WriteTar(dir, "ok.tar", Rootfs)));
    }

    [Fact]
    public void AcceptsGzip()
    {
        using var dir = new TempDir();
        string tar = WriteTar(dir, "ok.tar", Rootfs);
        using (var input = File.OpenRead(tar))
        using (var output = new GZipStream(File.Create(dir.Combine("ok.tar.gz")), CompressionLevel.Fastest))
            input.CopyTo(output);
        Assert.Equal(Rootfs.Length, TarballValidator.Validate(dir.Combine("ok.tar.gz")));
    }

    [Theory]
    [InlineData("../escape", "contains '..'")]
    [InlineData("bin/../../escape", "contains '..'")]
    [InlineData("/etc/passwd", "absolute path")]
    public void RefusesNamesThatEscape(string name, string why)
    {
        using var dir = new TempDir();
        string tar = WriteTar(dir, "bad.tar", [.. Rootfs, (TarEntryType.RegularFile, name, null)]);
        var e = Assert.Throws<EngineException>(() => TarballValidator.Validate(tar));
        Assert.Equal("InvalidImage", e.Reason);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void RefusesWritingThroughASymlinkTheTarballMade()
    {
        using var dir = new TempDir();
        string tar = WriteTar(dir, "bad.tar", [.. Rootfs, (TarEntryType.SymbolicLink, "evil", "/tmp"), (TarEntryType.RegularFile, "evil/pwned", null)]);
        var e = Assert.Throws<EngineException>(() => TarballValidator.Validate(tar));
        Assert.Contains("beneath symlink 'evil'", e.Message);
    }

    [Fact]
    public void RefusesHardlinksOutOfTheRoot()
    {
        using var dir = new TempDir();
        string tar = WriteTar(dir, "bad.tar", [.. Rootfs, (TarEntryType.HardLink, "shadow", "../../etc/shadow")]);
        Assert.Contains("hardlink target", Assert.Throws<EngineException>(() => TarballValidator.Validate(tar)).Message);
    }

    [Fact]
    public void RefusesCorruptAndTruncatedArchives()
    {
        using var dir = new TempDir();
        string garbage = dir.Combine("garbage.tar");
        File.WriteAllBytes(garbage, Enumerable.Range(0, 4096).Select(i => (byte)(i * 7 + 3)).ToArray());
        Assert.Contains("checksum", Assert.Throws<EngineException>(() => TarballValidator.Validate(garbage)).Message);

        string good = WriteTar(dir, "good.tar", Rootfs);
        string truncated = dir.Combine("truncated.tar");
        File.WriteAllBytes(truncated, File.ReadAllBytes(good)[..1300]);
        Assert.Equal("InvalidImage", Assert.Throws<EngineException>(() => TarballValidator.Validate(truncated)).Reason);

        string badGzip = dir.Combine("bad.tar.gz");
        File.WriteAllBytes(badGzip, [0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        Assert.Equal("InvalidImage", Assert.Throws<EngineException>(() => TarballValidator.Validate(badGzip)).Reason);
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setxattr(string path, string name, byte[] value, nint size, int flags);

    [Fact]
    public void ReadsGnuTarballsWithBinaryXattrsAndLongNames()
    {
        using var dir = new TempDir();
        string root = dir.Combine("root");
        string deep = Path.Combine(root, new string('d', 120), new string('e', 60));
        Directory.CreateDirectory(deep);
        string file = Path.Combine(deep, "ping");
        File.WriteAllText(file, "x");
        // A value with NUL, newline and '=' bytes, as file capabilities have.
        byte[] value = [1, 0, 0, 2, 0x0a, 0x3d, 0, 0x20, 0xff, 0x0a];
        Assert.Equal(0, setxattr(file, "user.caps", value, value.Length, 0));
        var psi = new ProcessStartInfo("tar", ["--create", "--file", dir.Combine("gnu.tar"), "--xattrs", "--xattrs-include=*", "-C", root, "."]);
        using (var tar = Process.Start(psi)!)
        {
            tar.WaitForExit();
            Assert.Equal(0, tar.ExitCode);
        }
        using var stream = File.OpenRead(dir.Combine("gnu.tar"));
        var names = TarScanner.Scan(stream).Select(m => m.Name.TrimEnd('/')).ToList();
        Assert.Contains($"./{new string('d', 120)}/{new string('e', 60)}/ping", names);
    }
}

public class RootfsInspectorTests
{
    [Fact]
    public void ResolvesAbsoluteAndRelativeLinksInsideTheRoot()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.Combine("usr", "lib", "systemd"));
        File.WriteAllText(dir.Combine("usr", "lib", "systemd", "systemd"), "");
        Directory.CreateDirectory(dir.Combine("usr", "sbin"));
        File.CreateSymbolicLink(dir.Combine("sbin"), "usr/sbin");
        File.CreateSymbolicLink(dir.Combine("usr", "sbin", "init"), "/usr/lib/systemd/systemd");
        Assert.Equal(dir.Combine("usr", "lib", "systemd", "systemd"), RootfsInspector.Resolve(dir.Path, "/sbin/init"));
        Assert.Equal(InitKinds.Systemd, RootfsInspector.InitKind(dir.Path));
    }

    [Fact]
    public void NeverLeavesTheRoot()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.Combine("sbin"));
        // On the host /etc/hostname exists; inside this root it does not.
        File.CreateSymbolicLink(dir.Combine("sbin", "init"), "../../../../../etc/hostname");
        Assert.Null(RootfsInspector.Resolve(dir.Path, "sbin/init"));
        Assert.Equal("", RootfsInspector.InitKind(dir.Path));
    }

    [Fact]
    public void StopSignalsFollowTheInit()
    {
        Assert.Equal(37, InitKinds.StopSignal(InitKinds.Systemd));
        Assert.Equal(12, InitKinds.StopSignal(InitKinds.Busybox));
        Assert.Equal(30, InitKinds.StopSignal(InitKinds.Other));
    }
}

public class BuilderTests
{
    [Fact]
    public void DetectsStaticAndDynamicBinaries()
    {
        Assert.False(BusyboxImageBuilder.IsDynamic("/bin/busybox"));
        Assert.True(BusyboxImageBuilder.IsDynamic("/bin/ls"));
    }

    [Fact]
    public void BusyboxTarballIsDeterministic()
    {
        using var dir = new TempDir();
        BusyboxImageBuilder.Build("/bin/busybox", dir.Combine("a.tar"));
        BusyboxImageBuilder.Build("/bin/busybox", dir.Combine("b.tar"));
        Assert.Equal(File.ReadAllBytes(dir.Combine("a.tar")), File.ReadAllBytes(dir.Combine("b.tar")));
        TarballValidator.Validate(dir.Combine("a.tar"));
    }

    [Fact]
    public void FindsTheHostMirrorInBothAptFormats()
    {
        using var apt = new TempDir();
        Directory.CreateDirectory(apt.Combine("sources.list.d"));
        File.WriteAllText(apt.Combine("sources.list.d", "debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\nTypes: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n");
        Assert.Equal("http://mirror.example/debian", DebootstrapImageBuilder.HostMirror(apt.Path));
        using var old = new TempDir();
        File.WriteAllText(old.Combine("sources.list"), "# comment\ndeb [arch=amd64] http://archive.example/ubuntu jammy main\n");
        Assert.Equal("http://archive.example/ubuntu", DebootstrapImageBuilder.HostMirror(old.Path));
        using var none = new TempDir();
        Assert.Null(DebootstrapImageBuilder.HostMirror(none.Path));
    }

    [Fact]
    public void CacheKeyDependsOnEveryInput()
    {
        string a = DebootstrapImageBuilder.CacheKey("bookworm", "http://m/debian");
        Assert.Equal(a, DebootstrapImageBuilder.CacheKey("bookworm", "http://m/debian"));
        Assert.NotEqual(a, DebootstrapImageBuilder.CacheKey("trixie", "http://m/debian"));
        Assert.NotEqual(a, DebootstrapImageBuilder.CacheKey("bookworm", "http://n/debian"));
    }

    [Theory]
    [InlineData("Bookworm")]
    [InlineData("../x")]
    [InlineData("a b")]
    public void RefusesBadReleases(string release)
    {
        var e = Assert.Throws<EngineException>(() => DebootstrapImageBuilder.BuildAsync(release, "http://m/debian", "/nonexistent", null, default).GetAwaiter().GetResult());
        Assert.Equal("InvalidRelease", e.Reason);
    }
}

/// <summary>Dropping an image's device nodes: only inside the rootfs, whatever its symlinks point at.</summary>
public class DeviceNodesTests
{
    private static void MakeNode(string path)
    {
        var mk = System.Diagnostics.Process.Start("mknod", [path, "c", "1", "3"])!;
        mk.WaitForExit();
        Assert.Equal(0, mk.ExitCode);
    }

    [Fact]
    public void RemovesTheRootfsNodesAndNeverFollowsItsSymlinksOut()
    {
        using var host = new TempDir();
        using var rootfs = new TempDir();
        // Outside the rootfs: a node that must survive, reachable through the image's symlinks.
        MakeNode(host.Combine("hostnode"));
        Directory.CreateDirectory(rootfs.Combine("dev"));
        MakeNode(rootfs.Combine("dev", "null0"));
        Directory.CreateDirectory(rootfs.Combine("usr", "deep"));
        MakeNode(rootfs.Combine("usr", "deep", "disk"));
        File.CreateSymbolicLink(rootfs.Combine("dev", "fd"), "/proc/self/fd");
        File.CreateSymbolicLink(rootfs.Combine("escape"), host.Path);
        File.CreateSymbolicLink(rootfs.Combine("usr", "up"), "../../../" + Path.GetFileName(host.Path));

        var removed = DeviceNodes.RemoveAll(rootfs.Path);

        Assert.Equal(["dev/null0", "usr/deep/disk"], removed);
        Assert.True(File.Exists(host.Combine("hostnode")));
        Assert.False(File.Exists(rootfs.Combine("dev", "null0")));
        Assert.NotNull(new FileInfo(rootfs.Combine("dev", "fd")).LinkTarget);
    }
}
