using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Tests;

/// <summary>A tar stream written header by header, so a test can say exactly what a hostile archive holds.</summary>
internal sealed class RawTar
{
    private readonly MemoryStream _s = new();

    public RawTar Entry(string name, char type = '0', string data = "", string link = "", int mode = 0x1a4, long uid = 0, long gid = 0,
        string prefix = "", byte[]? sizeField = null, int mtime = 1_700_000_000, byte[]? raw = null)
    {
        byte[] body = raw ?? Encoding.UTF8.GetBytes(data);
        var h = new byte[512];
        Put(h, 0, 100, Encoding.UTF8.GetBytes(name));
        Octal(h, 100, 8, mode);
        Octal(h, 108, 8, uid);
        Octal(h, 116, 8, gid);
        if (sizeField is null) Octal(h, 124, 12, body.Length); else sizeField.CopyTo(h, 124);
        Octal(h, 136, 12, mtime);
        h[156] = (byte)type;
        Put(h, 157, 100, Encoding.UTF8.GetBytes(link));
        Put(h, 257, 6, "ustar\0"u8.ToArray());
        Put(h, 263, 2, "00"u8.ToArray());
        Put(h, 345, 155, Encoding.UTF8.GetBytes(prefix));
        for (int i = 148; i < 156; i++) h[i] = (byte)' ';
        long sum = h.Sum(b => (long)b);
        Put(h, 148, 8, Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 "));
        _s.Write(h);
        _s.Write(body);
        _s.Write(new byte[(512 - body.Length % 512) % 512]);
        return this;
    }

    public RawTar Dir(string name, int mode = 0x1ed) => Entry(name, '5', mode: mode);

    /// <summary>A PAX extended header ('x' for the next member, 'g' global) with raw record values.</summary>
    public RawTar Pax(char type, params (string Key, byte[] Value)[] records)
    {
        var body = new MemoryStream();
        foreach (var (key, value) in records)
        {
            int rest = 1 + Encoding.UTF8.GetByteCount(key) + 1 + value.Length + 1;
            int len = rest + 1;
            while (len.ToString().Length + rest != len) len++;
            body.Write(Encoding.UTF8.GetBytes($"{len} {key}="));
            body.Write(value);
            body.WriteByte((byte)'\n');
        }
        return Entry("././@PaxHeader", type, raw: body.ToArray());
    }

    public RawTar Pax(char type, string key, string value) => Pax(type, (key, Encoding.UTF8.GetBytes(value)));

    public byte[] Bytes(bool end = true)
    {
        if (end) _s.Write(new byte[1024]);
        return _s.ToArray();
    }

    public static RawTar Rootfs() => new RawTar().Dir("./").Dir("bin/").Entry("bin/busybox", data: "#!busybox", mode: 0x1ed)
        .Dir("sbin/").Entry("sbin/init", '2', link: "../bin/busybox");

    private static void Put(byte[] h, int at, int len, byte[] v) => v.AsSpan(0, Math.Min(len, v.Length)).CopyTo(h.AsSpan(at));

    private static void Octal(byte[] h, int at, int len, long v) => Put(h, at, len, Encoding.ASCII.GetBytes(Convert.ToString(v, 8).PadLeft(len - 1, '0') + "\0"));
}

/// <summary>
/// The one tar parser and extractor against archives built to attack it. After each: a clear
/// refusal or the member dropped and reported, and the canary directory beside the rootfs (what
/// an escape would reach) unchanged.
/// </summary>
public sealed partial class RootfsExtractorTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _rootfs, _outside;

    public RootfsExtractorTests()
    {
        _rootfs = _dir.Combine("rootfs");
        _outside = _dir.Combine("outside");
        Directory.CreateDirectory(_rootfs);
        Directory.CreateDirectory(_outside);
        File.WriteAllText(Path.Combine(_outside, "canary"), "host");
    }

    public void Dispose()
    {
        TreeRemover.Remove(_dir.Path);
        _dir.Dispose();
    }

    private ExtractedRootfs Extract(byte[] tar, ImportLimits? limits = null) =>
        RootfsExtractor.Extract(new TarballReader(new MemoryStream(tar), limits ?? ImportLimits.Default), _rootfs);

    private string Refused(byte[] tar, ImportLimits? limits = null)
    {
        var e = Assert.Throws<InvalidDataException>(() => Extract(tar, limits));
        AssertHostUntouched();
        return e.Message;
    }

    private void AssertHostUntouched()
    {
        Assert.Equal(["canary"], Directory.GetFileSystemEntries(_outside).Select(Path.GetFileName));
        Assert.Equal("host", File.ReadAllText(Path.Combine(_outside, "canary")));
        Assert.Equal(1, Stat(Path.Combine(_outside, "canary")).Links);
    }

    private static (uint Mode, long Uid, long Gid, long Links) Stat(string path)
    {
        var p = Process.Start(new ProcessStartInfo("stat", ["-c", "%f %u %g %h", path]) { RedirectStandardOutput = true })!;
        var f = p.StandardOutput.ReadToEnd().Trim().Split(' ');
        p.WaitForExit();
        return (Convert.ToUInt32(f[0], 16), long.Parse(f[1]), long.Parse(f[2]), long.Parse(f[3]));
    }

    [Fact]
    public void UnpacksOwnersModesLinksAndTimes()
    {
        var r = Extract(RawTar.Rootfs().Entry("bin/su", data: "su", mode: 0xded, uid: 0, gid: 0)
            .Entry("etc/owned", data: "x", mode: 0x1a0, uid: 1234, gid: 4321, mtime: 1_600_000_000)
            .Entry("bin/sh", '1', link: "bin/busybox").Entry("etc-link", '2', link: "/etc").Bytes());
        Assert.Equal(9, r.Entries);
        Assert.Equal((0x81a0u, 1234L, 4321L), (Stat(Path.Combine(_rootfs, "etc/owned")).Mode, Stat(Path.Combine(_rootfs, "etc/owned")).Uid, Stat(Path.Combine(_rootfs, "etc/owned")).Gid));
        Assert.Equal(0x8dedu, Stat(Path.Combine(_rootfs, "bin/su")).Mode);
        Assert.Equal(2, Stat(Path.Combine(_rootfs, "bin/sh")).Links);
        Assert.Equal("/etc", new FileInfo(Path.Combine(_rootfs, "etc-link")).LinkTarget);
        Assert.Equal(new DateTime(2020, 9, 13, 12, 26, 40, DateTimeKind.Utc), File.GetLastWriteTimeUtc(Path.Combine(_rootfs, "etc/owned")));
        Assert.Equal(new DateTime(2023, 11, 14, 22, 13, 20, DateTimeKind.Utc), Directory.GetLastWriteTimeUtc(Path.Combine(_rootfs, "bin")));
        Assert.Empty(r.DroppedEntries);
        AssertHostUntouched();
    }

    [Theory]
    [InlineData("../escape", "contains '..'")]
    [InlineData("bin/../../escape", "contains '..'")]
    [InlineData("/etc/passwd", "absolute path")]
    [InlineData("./../escape", "contains '..'")]
    public void RefusesNamesThatEscape(string name, string why) =>
        Assert.Contains(why, Refused(RawTar.Rootfs().Entry(name, data: "x").Bytes()));

    [Fact]
    public void RefusesWritingThroughASymlinkTheArchiveMade() =>
        Assert.Contains("not a directory (a symlink is never followed)",
            Refused(RawTar.Rootfs().Entry("evil", '2', link: _outside).Entry("evil/pwned", data: "x").Bytes()));

    [Fact]
    public void RefusesARelativeSymlinkThenADirectoryThroughIt() =>
        Assert.Contains("not a directory", Refused(RawTar.Rootfs().Entry("up", '2', link: "../outside").Dir("up/sub/").Bytes()));

    [Fact]
    public void ASymlinkThenADirectoryOfTheSameNameIsReplacedNeverFollowed()
    {
        // GNU tar keeps the symlink and extracts the next member through it; here the directory replaces it.
        Extract(RawTar.Rootfs().Entry("evil", '2', link: _outside).Dir("evil/").Entry("evil/pwned", data: "x").Bytes());
        Assert.True(File.Exists(Path.Combine(_rootfs, "evil", "pwned")));
        Assert.Null(new DirectoryInfo(Path.Combine(_rootfs, "evil")).LinkTarget);
        AssertHostUntouched();
    }

    [Theory]
    [InlineData("../outside/canary")]
    [InlineData("../../etc/shadow")]
    [InlineData("/etc/passwd")]
    [InlineData("no/such/file")]
    public void RefusesHardlinksOutOfTheArchive(string target) =>
        Refused(RawTar.Rootfs().Entry("shadow", '1', link: target).Bytes());

    [Fact]
    public void RefusesHardlinksToSymlinksAndDirectories()
    {
        Assert.Contains("not a regular file this archive made",
            Refused(RawTar.Rootfs().Entry("s", '2', link: Path.Combine(_outside, "canary")).Entry("h", '1', link: "s").Bytes()));
        Assert.Contains("not a regular file this archive made", Refused(RawTar.Rootfs().Entry("h", '1', link: "bin").Bytes()));
        // A regular file later replaced by a symlink is no longer a link target.
        Assert.Contains("not a regular file this archive made", Refused(RawTar.Rootfs().Entry("f", data: "x")
            .Entry("f", '2', link: Path.Combine(_outside, "canary")).Entry("h", '1', link: "f").Bytes()));
    }

    [Fact]
    public void RefusesAHardlinkThroughASymlinkedDirectory() =>
        Refused(RawTar.Rootfs().Entry("d", '2', link: _outside).Entry("h", '1', link: "d/canary").Bytes());

    [Fact]
    public void RefusesAFileThatWouldReplaceADirectory() =>
        Assert.Contains("would replace a directory", Refused(RawTar.Rootfs().Entry("bin", data: "x").Bytes()));

    [Fact]
    public void APaxPathOverridesTheHeaderNameAndIsChecked()
    {
        Assert.Contains("contains '..'", Refused(RawTar.Rootfs().Pax('x', "path", "../escape").Entry("harmless", data: "x").Bytes()));
        Assert.Contains("contains '..'", Refused(RawTar.Rootfs().Pax('x', "linkpath", "../outside/canary").Entry("h", '1', link: "bin/busybox").Bytes()));
        Assert.Contains("NUL", Refused(RawTar.Rootfs().Pax('x', "path", "etc/x\0/../../escape").Entry("harmless", data: "x").Bytes()));
    }

    [Fact]
    public void APaxGlobalHeaderAppliesToEveryLaterMember()
    {
        Assert.Contains("absolute path", Refused(RawTar.Rootfs().Pax('g', "path", "/tmp/escape").Entry("harmless", data: "x").Bytes()));
        var r = Extract(RawTar.Rootfs().Pax('g', "uid", "77").Entry("etc/f", data: "x").Bytes());
        Assert.Equal(77, Stat(Path.Combine(_rootfs, "etc/f")).Uid);
        Assert.Equal(6, r.Entries);
    }

    [Fact]
    public void UstarPrefixesArePartOfTheName()
    {
        Assert.Contains("contains '..'", Refused(RawTar.Rootfs().Entry("escape", data: "x", prefix: "..").Bytes()));
        Extract(RawTar.Rootfs().Entry("file", data: "x", prefix: "usr/share").Bytes());
        Assert.True(File.Exists(Path.Combine(_rootfs, "usr/share/file")));
        Assert.False(File.Exists(Path.Combine(_rootfs, "file")));
    }

    [Fact]
    public void GnuLongNamesAndLinksAreChecked()
    {
        Assert.Contains("contains '..'", Refused(RawTar.Rootfs().Entry("././@LongLink", 'L', data: "../../" + new string('a', 150) + "\0").Entry("short", data: "x").Bytes()));
        Assert.Contains("contains '..'", Refused(RawTar.Rootfs().Entry("././@LongLink", 'K', data: "../outside/canary\0").Entry("h", '1', link: "bin/busybox").Bytes()));
    }

    [Fact]
    public void HugeSizeHeadersStopAtTheLimitBeforeAnythingIsRead()
    {
        // GNU base-256: 2^62 bytes, then nothing.
        byte[] huge = [0x80, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0];
        var clock = Stopwatch.StartNew();
        Assert.Contains("the import limit", Refused(RawTar.Rootfs().Entry("big", sizeField: huge).Bytes(end: false)));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
        byte[] negative = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        Assert.Contains("negative", Refused(RawTar.Rootfs().Entry("neg", sizeField: negative).Bytes()));
    }

    [Fact]
    public void DropsAndReportsFifosDevicesSparseAndOtherTypes()
    {
        var clock = Stopwatch.StartNew();
        var r = Extract(RawTar.Rootfs().Dir("dev/").Entry("dev/sda", '4').Entry("dev/kvm", '3').Entry("run-fifo", '6')
            .Entry("sparse", 'S', data: "sparse data").Entry("contig", '7', data: "c").Entry("vol", 'V')
            .Pax('x', ("GNU.sparse.major", "1"u8.ToArray()), ("GNU.sparse.name", "etc/sparse1"u8.ToArray())).Entry("./GNUSparseFile.0/sparse1", data: "map")
            .Pax('x', "SCHILY.xattr.trusted.overlay.opaque", "y").Dir("opaque/").Bytes());
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), "a FIFO member is never opened");
        Assert.Equal(["dev/kvm", "dev/sda"], r.DroppedDeviceNodes);
        Assert.Equal(["etc/sparse1 (sparse file)", "opaque (xattr trusted.overlay.opaque)", "run-fifo (fifo)", "sparse (sparse file)", "vol (type 'V')"], r.DroppedEntries);
        Assert.Equal(["bin", "contig", "dev", "opaque", "sbin"], Directory.GetFileSystemEntries(_rootfs).Select(Path.GetFileName).Order());
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_rootfs, "dev")));
        AssertHostUntouched();
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint lgetxattr(string path, string name, byte[] value, nint size);

    [Fact]
    public void BinaryXattrsFromGnuTarArriveIntact()
    {
        // A value with NUL, newline and '=' bytes, as file capabilities have.
        byte[] caps = [1, 0, 0, 2, 0x0a, 0x3d, 0, 0x20, 0xff, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        Extract(RawTar.Rootfs().Pax('x', ("SCHILY.xattr.security.capability", caps), ("SCHILY.xattr.user.note", "n=1\n"u8.ToArray()))
            .Entry("bin/ping", data: "ping", mode: 0x1ed).Bytes());
        var buf = new byte[64];
        Assert.Equal(caps.Length, (int)lgetxattr(Path.Combine(_rootfs, "bin/ping"), "security.capability", buf, buf.Length));
        Assert.Equal(caps, buf[..caps.Length]);
        Assert.Equal(4, (int)lgetxattr(Path.Combine(_rootfs, "bin/ping"), "user.note", buf, buf.Length));
    }

    [Fact]
    public void RefusesTruncatedCorruptAndMalformedArchives()
    {
        byte[] good = RawTar.Rootfs().Entry("etc/f", data: new string('x', 3000)).Bytes();
        Assert.Contains("ends inside", Refused(good[..(good.Length - 1024 - 1000)]));
        Assert.Contains("ends inside a header", Refused(good[..1300]));
        Assert.Contains("checksum", Refused(Enumerable.Range(0, 4096).Select(i => (byte)(i * 7 + 3)).ToArray()));
        Assert.Contains("malformed PAX", Refused(new RawTar().Entry("././@PaxHeader", 'x', "99 path=x\n").Entry("f").Bytes()));
        Assert.Contains("not a number", Refused(RawTar.Rootfs().Pax('x', "uid", "-1").Entry("f").Bytes()));
        Assert.Contains("beyond the id range", Refused(RawTar.Rootfs().Pax('x', "uid", "4294967295").Entry("f").Bytes()));
        Assert.Contains("no entries", Refused(new byte[1024]));
    }

    [Fact]
    public void ADecompressionBombStopsAtTheByteLimit()
    {
        string bomb = _dir.Combine("bomb.tar.gz");
        var tar = RawTar.Rootfs().Bytes(end: false);
        using (var gz = new GZipStream(File.Create(bomb), CompressionLevel.Fastest))
        {
            gz.Write(tar);
            gz.Write(new RawTar().Entry("zeros", sizeField: Encoding.ASCII.GetBytes(Convert.ToString(200L << 20, 8).PadLeft(11, '0') + "\0")).Bytes(end: false));
            var zeros = new byte[1 << 20];
            for (int i = 0; i < 200; i++) gz.Write(zeros);
        }
        Assert.True(new FileInfo(bomb).Length < 2 << 20);
        using var input = new DecompressedTarball(bomb);
        var e = Assert.Throws<InvalidDataException>(() => RootfsExtractor.Extract(new TarballReader(input.Stream, new ImportLimits(50L << 20, 1000)), _rootfs));
        Assert.Contains("beyond 52428800 unpacked bytes", e.Message);
        Assert.False(File.Exists(Path.Combine(_rootfs, "zeros")));
        AssertHostUntouched();
    }

    [Fact]
    public void StopsAtTheEntryLimit()
    {
        var tar = RawTar.Rootfs();
        for (int i = 0; i < 50; i++) tar.Entry($"f{i}");
        Assert.Contains("more than 20 entries", Refused(tar.Bytes(), new ImportLimits(1 << 20, 20)));
        Assert.Contains("more than 20 entries", Refused(Enumerable.Range(0, 30).Aggregate(new RawTar(), (t, _) => t.Pax('g', "uid", "1")).Bytes(), new ImportLimits(1 << 20, 20)));
    }

    [Fact]
    public void UnpacksPathsBeyondPathMaxAndRefusesNestingBeyondTheDepthLimit()
    {
        string deep = string.Join('/', Enumerable.Range(0, 25).Select(i => new string((char)('a' + i), 200)));
        Extract(RawTar.Rootfs().Pax('x', "path", deep + "/file").Entry("x", data: "deep").Bytes());
        Assert.True(deep.Length > 4096);
        var usage = TreeUsage.Measure(_rootfs, 1000, TimeSpan.FromSeconds(10));
        Assert.Null(usage.Partial);
        Assert.Equal("#!busybox".Length + "deep".Length, usage.Bytes);
        TreeRemover.Remove(_rootfs);
        Assert.False(Directory.Exists(_rootfs));
        Directory.CreateDirectory(_rootfs);
        Assert.Contains("more than 256", Refused(RawTar.Rootfs().Pax('x', "path", string.Join('/', Enumerable.Repeat("d", 300))).Entry("x").Bytes()));
    }
}

/// <summary>Imports through the store: a refused one leaves nothing and loses nothing; leftovers never stop a start.</summary>
public sealed class ImageImportTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose()
    {
        TreeRemover.Remove(_dir.Path);
        _dir.Dispose();
    }

    private string Images => _dir.Combine("state", "images");

    /// <summary>depth nested directories of that name under dir, made one component at a time (the whole path is beyond PATH_MAX).</summary>
    private static void MakeDeep(string dir, int depth, string name)
    {
        var fds = new List<Interop.SafeFd> { Interop.Sys.Open(dir, Interop.At.DirFlags) };
        try
        {
            for (int i = 0; i < depth; i++)
            {
                Assert.Equal(0, Interop.At.mkdirat(fds[^1].Fd, name, 0x1ed));
                int fd = Interop.At.openat(fds[^1].Fd, name, Interop.At.DirFlags);
                Assert.True(fd >= 0);
                fds.Add(new Interop.SafeFd(fd));
            }
        }
        finally
        {
            foreach (var fd in fds) fd.Dispose();
        }
    }

    [Fact]
    public async Task ARefusedImportLeavesNothingAndLosesNothing()
    {
        var store = new ImageStore(_dir.Combine("state"), new ImportLimits(64L << 20, 10_000));
        string good = _dir.Combine("busybox.tar");
        BusyboxImageBuilder.Build("/bin/busybox", good);
        var image = await store.ImportAsync(good, "bb", "test", null, default);
        var before = Directory.GetFileSystemEntries(Images).Order().ToList();
        string Bad(string name, byte[] bytes)
        {
            string path = _dir.Combine(name);
            File.WriteAllBytes(path, bytes);
            return path;
        }
        foreach (var bad in new[]
        {
            Bad("escape.tar", RawTar.Rootfs().Entry("../escape", data: "x").Bytes()),
            Bad("through.tar", RawTar.Rootfs().Entry("evil", '2', link: _dir.Path).Entry("evil/pwned", data: "x").Bytes()),
            Bad("truncated.tar", RawTar.Rootfs().Entry("f", data: new string('x', 5000)).Bytes()[..3000]),
            Bad("noinit.tar", new RawTar().Dir("etc/").Entry("etc/hostname", data: "x").Bytes()),
            Bad("deep.tar", RawTar.Rootfs().Pax('x', "path", string.Join('/', Enumerable.Repeat(new string('p', 250), 30)) + "/f").Entry("x", data: "x")
                .Entry("bin", data: "replaces a directory").Bytes()),
        })
        {
            var e = await Assert.ThrowsAsync<EngineException>(() => store.ImportAsync(bad, "bad", "test", null, default));
            Assert.Equal("InvalidImage", e.Reason);
            Assert.Equal(before, Directory.GetFileSystemEntries(Images).Order().ToList());
        }
        Assert.False(File.Exists(_dir.Combine("pwned")));
        Assert.Equal(image, store.Resolve("bb"));
        Assert.True(File.Exists(Path.Combine(store.RootfsOf(image.Fingerprint), "bin", "busybox")));
    }

    [Fact]
    public async Task AStreamedImportKeepsTheTarballItHashedAndRefusesBytesOfAnotherFingerprint()
    {
        var store = new ImageStore(_dir.Combine("state"));
        string tarball = _dir.Combine("busybox.tar");
        BusyboxImageBuilder.Build("/bin/busybox", tarball);
        string fingerprint = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(tarball)));
        await using (var wrong = File.OpenRead(tarball))
        {
            var e = await Assert.ThrowsAsync<EngineException>(() => store.ImportAsync(wrong, "https://source", new string('a', 64), "bb", "test", null, default));
            Assert.Equal("ChecksumMismatch", e.Reason);
            Assert.Contains(fingerprint, e.Message);
        }
        Assert.Empty(Directory.GetFileSystemEntries(Images));
        await using (var right = File.OpenRead(tarball))
            Assert.Equal(fingerprint, (await store.ImportAsync(right, "https://source", fingerprint, "bb", "test", null, default)).Fingerprint);
        Assert.Equal(File.ReadAllBytes(tarball), File.ReadAllBytes(store.TarballOf("bb")));
        Assert.True(File.Exists(Path.Combine(store.RootfsOf(fingerprint), "bin", "busybox")));
    }

    /// <summary>A source that never ends (a hostile daemon pulled from): endless zeros, counted.</summary>
    private sealed class EndlessStream : Stream
    {
        public long Served;
        public override int Read(byte[] buffer, int offset, int count)
        {
            Array.Clear(buffer, offset, count);
            Served += count;
            return count;
        }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => Served; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Fact]
    public async Task AStreamedImportStopsAtTheLargestTarballTheLimitsCanUnpack()
    {
        var store = new ImageStore(_dir.Combine("state"), new ImportLimits(1L << 20, 100));
        var endless = new EndlessStream();
        var e = await Assert.ThrowsAsync<EngineException>(() => store.ImportAsync(endless, "https://source", null, "bb", "test", null, default));
        Assert.Equal("InvalidImage", e.Reason);
        Assert.Contains("larger than", e.Message);
        Assert.InRange(endless.Served, (1L << 20) + 100 * 1536, (1L << 20) + 100 * 1536 + (1 << 20));
        Assert.Empty(Directory.GetFileSystemEntries(Images));
    }

    [Fact]
    public void AShiftedCopyKeepsSetuidNeverFollowsSymlinksAndFailsCleanlyBeyondPathMax()
    {
        string rootfs = _dir.Combine("image", "rootfs");
        Directory.CreateDirectory(rootfs);
        string outside = _dir.Combine("outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "canary"), "host");
        var tar = RawTar.Rootfs().Entry("bin/su", data: "su", mode: 0x9ed, uid: 0).Entry("out", '2', link: outside)
            .Entry("etc/f", data: "x", uid: 7, gid: 8);
        RootfsExtractor.Extract(new TarballReader(new MemoryStream(tar.Bytes()), ImportLimits.Default), rootfs);

        string shifted = IdShifter.EnsureShifted(rootfs, new Spec.IdMap(100_000, 200_000, 65536));

        using (var dir = Interop.Sys.Open(shifted, Interop.At.DirFlags))
        {
            var su = Interop.At.Stat(dir.Fd, "bin/su", "su");
            Assert.Equal((100_000u, 200_000u, 0x9edu), (su.Uid, su.Gid, su.Mode & 0xfff));
            Assert.Equal(100_000u, Interop.At.Stat(dir.Fd, "out", "out").Uid);
            Assert.Equal((100_007u, 200_008u), (Interop.At.Stat(dir.Fd, "etc/f", "f").Uid, Interop.At.Stat(dir.Fd, "etc/f", "f").Gid));
        }
        Assert.Equal(0u, Interop.At.Stat(-100, Path.Combine(outside, "canary"), "canary").Uid);

        // cp -a cannot copy beyond PATH_MAX: the shift fails with a clear error and leaves no staging copy.
        string deepRootfs = _dir.Combine("deep", "rootfs");
        Directory.CreateDirectory(deepRootfs);
        RootfsExtractor.Extract(new TarballReader(new MemoryStream(RawTar.Rootfs()
            .Pax('x', "path", string.Join('/', Enumerable.Repeat(new string('s', 200), 25)) + "/f").Entry("x", data: "x").Bytes()), ImportLimits.Default), deepRootfs);
        var e = Assert.Throws<EngineException>(() => IdShifter.EnsureShifted(deepRootfs, new Spec.IdMap(100_000, 200_000, 65536)));
        Assert.Equal("ShiftFailed", e.Reason);
        Assert.Equal(["rootfs"], Directory.GetFileSystemEntries(_dir.Combine("deep")).Select(Path.GetFileName));
    }

    [Fact]
    public void AStartReclaimsEveryStagingLeftoverDeepOnesToo()
    {
        Directory.CreateDirectory(Images);
        // A leftover deeper than PATH_MAX, one whose rootfs holds a symlink out, a stray file, a temp file.
        string deep = Path.Combine(Images, ".import-deep");
        Directory.CreateDirectory(deep);
        MakeDeep(deep, 40, new string('q', 200));
        string outside = _dir.Combine("outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "canary"), "host");
        Directory.CreateDirectory(Path.Combine(Images, ".remove-x", "rootfs"));
        File.CreateSymbolicLink(Path.Combine(Images, ".remove-x", "rootfs", "out"), outside);
        File.WriteAllText(Path.Combine(Images, ".import-file"), "x");

        var store = new ImageStore(_dir.Combine("state"));

        Assert.Empty(Directory.GetFileSystemEntries(Images));
        Assert.Empty(store.List());
        Assert.Equal("host", File.ReadAllText(Path.Combine(outside, "canary")));
    }
}

/// <summary>The disk usage walk over trees a container controls: bounded, never out of the tree.</summary>
public sealed class TreeUsageTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose()
    {
        TreeRemover.Remove(_dir.Path);
        _dir.Dispose();
    }

    [Fact]
    public void CountsRegularFilesAndNeverFollowsSymlinks()
    {
        string tree = _dir.Combine("upper");
        Directory.CreateDirectory(Path.Combine(tree, "a", "b"));
        File.WriteAllBytes(Path.Combine(tree, "a", "b", "f"), new byte[1000]);
        File.WriteAllBytes(Path.Combine(tree, "g"), new byte[24]);
        string outside = _dir.Combine("outside");
        Directory.CreateDirectory(outside);
        File.WriteAllBytes(Path.Combine(outside, "big"), new byte[1 << 20]);
        File.CreateSymbolicLink(Path.Combine(tree, "to-dir"), outside);
        File.CreateSymbolicLink(Path.Combine(tree, "a", "to-file"), Path.Combine(outside, "big"));
        File.CreateSymbolicLink(Path.Combine(tree, "loop"), ".");
        var r = TreeUsage.Measure(tree, 1000, TimeSpan.FromSeconds(10));
        Assert.Equal((1024L, null as string), (r.Bytes, r.Partial));
        Assert.Equal(7, r.Entries);
        Assert.Equal((0L, null as string), (TreeUsage.Measure(_dir.Combine("none"), 1000, TimeSpan.FromSeconds(1)).Bytes, null as string));
    }

    [Fact]
    public void StaysOnTheTreesMountThroughABindMountLoop()
    {
        string tree = _dir.Combine("upper");
        Directory.CreateDirectory(Path.Combine(tree, "sub", "loop"));
        File.WriteAllBytes(Path.Combine(tree, "f"), new byte[10]);
        Assert.Equal(0, Run("mount", "--bind", tree, Path.Combine(tree, "sub", "loop")));
        try
        {
            var r = TreeUsage.Measure(tree, 1000, TimeSpan.FromSeconds(10));
            Assert.Equal((10L, null as string), (r.Bytes, r.Partial));
        }
        finally
        {
            Assert.Equal(0, Run("umount", Path.Combine(tree, "sub", "loop")));
        }
    }

    [Fact]
    public void AHugeDirectoryOrADeepTreeGivesAPartialResultNotAnError()
    {
        string wide = _dir.Combine("wide");
        Directory.CreateDirectory(wide);
        Assert.Equal(0, Run("sh", "-c", $"cd {wide} && seq 100000 | xargs touch && echo x > one"));
        var clock = Stopwatch.StartNew();
        var capped = TreeUsage.Measure(wide, 10_000, TimeSpan.FromSeconds(30));
        Assert.Contains("stopped after 10000 entries", capped.Partial);
        var timed = TreeUsage.Measure(wide, 1_000_000, TimeSpan.Zero);
        Assert.Contains("stopped after 0 s", timed.Partial);
        Assert.True(timed.Entries < 100_000);
        var all = TreeUsage.Measure(wide, TreeUsage.DefaultMaxEntries, TreeUsage.DefaultBudget * 10);
        Assert.Equal((100_001L, 2L, null as string), (all.Entries, all.Bytes, all.Partial));

        string deep = _dir.Combine("deep");
        Directory.CreateDirectory(deep);
        var tar = RawTar.Rootfs().Pax('x', "path", string.Join('/', Enumerable.Repeat("d", 250)) + "/f").Entry("x", data: "x").Bytes();
        RootfsExtractor.Extract(new TarballReader(new MemoryStream(tar), ImportLimits.Default), deep);
        Assert.Equal(0, Run("sh", "-c", $"cd {deep} && for i in $(seq 250); do cd d || exit 1; done && mkdir -p {string.Join('/', Enumerable.Repeat("e", 20))}"));
        var r = TreeUsage.Measure(deep, 1000, TimeSpan.FromSeconds(10));
        Assert.Contains("more than 256 levels deep", r.Partial);
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2));
    }

    private static int Run(string file, params string[] args)
    {
        using var p = Process.Start(file, args);
        p.WaitForExit();
        return p.ExitCode;
    }
}
