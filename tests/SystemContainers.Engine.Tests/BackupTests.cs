using System.Diagnostics;
using System.Text;
using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Runtime;
using Xunit;

namespace SystemContainers.Engine.Tests;

/// <summary>The parts of backups that need no daemon: the tar writer, the index and the stream pipe.</summary>
public class BackupTests
{
    private static readonly ImportLimits Unlimited = new(long.MaxValue, long.MaxValue);

    private static TarMember Member(string name, char type, long size = 0, string link = "", long uid = 0, long gid = 0, long nsec = 0,
        params (string, byte[])[] xattrs) =>
        new(name, type, link, 0x1ed, uid, gid, 1_700_000_000, nsec, size, xattrs, false);

    [Fact]
    public void TarballWriter_members_read_back_as_written_long_names_big_ids_binary_xattrs_and_all()
    {
        string longName = "backup/container/rootfs/" + string.Join('/', Enumerable.Repeat("deep-directory-name", 16)) + "/file";
        byte[] capability = [0x01, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, (byte)'\n', 0xff];
        byte[] data = new byte[1_000_003];
        new Random(7).NextBytes(data);
        var written = new[]
        {
            (Member("backup/container/rootfs/", '5'), Array.Empty<byte>()),
            (Member(longName, '0', data.Length, uid: 3_000_000, gid: 2_500_000, nsec: 123_456_789, xattrs: [("security.capability", capability)]), data),
            (Member("backup/container/rootfs/ünïcode-😀", '2', link: "../" + new string('x', 150)), []),
            (Member("backup/container/rootfs/hard", '1', link: longName), []),
        };
        var stream = new MemoryStream();
        var writer = new TarballWriter(stream);
        foreach (var (m, bytes) in written)
        {
            int at = 0;
            writer.Add(m, m.Name, span =>
            {
                int n = Math.Min(span.Length, bytes.Length - at);
                bytes.AsSpan(at, n).CopyTo(span);
                at += n;
                return n;
            });
        }
        writer.Finish();

        stream.Position = 0;
        var reader = new TarballReader(stream, Unlimited);
        foreach (var (m, bytes) in written)
        {
            var read = reader.Next();
            Assert.NotNull(read);
            Assert.Equal((m.Name, m.Type, m.LinkName, m.Mode, m.Uid, m.Gid, m.MtimeSeconds, m.MtimeNanoseconds, m.Size),
                (read.Name, read.Type, read.LinkName, read.Mode, read.Uid, read.Gid, read.MtimeSeconds, read.MtimeNanoseconds, read.Size));
            Assert.Equal(m.Xattrs.Select(x => (x.Name, Convert.ToHexString(x.Value))), read.Xattrs.Select(x => (x.Name, Convert.ToHexString(x.Value))));
            var back = new MemoryStream();
            var buffer = new byte[70_000];
            for (int n; (n = reader.Read(buffer)) > 0;) back.Write(buffer, 0, n);
            Assert.Equal(bytes, back.ToArray());
        }
        Assert.Null(reader.Next());
    }

    /// <summary>
    /// A live move's stream is written by two writers on one stream (the pre-sync while the
    /// container runs, the rest frozen; only the second finishes): the reader sees one archive.
    /// </summary>
    [Fact]
    public void TarballWriter_two_writers_on_one_stream_read_back_as_one_archive()
    {
        var stream = new MemoryStream();
        byte[] first = Encoding.UTF8.GetBytes("pre-synced"), second = new byte[513];
        new Random(3).NextBytes(second);
        new TarballWriter(stream).AddFile(BackupIndex.ChunkOf(BackupIndex.PresyncStream, 0), 0x180, first.Length, new MemoryStream(first), DateTimeOffset.UnixEpoch);
        new TarballWriter(stream).AddFile(BackupIndex.PresyncEnd, 0x180, 0, Stream.Null, DateTimeOffset.UnixEpoch);
        var rest = new TarballWriter(stream);
        rest.AddFile(BackupIndex.ChunkOf(BackupIndex.ContainerStream, 0), 0x180, second.Length, new MemoryStream(second), DateTimeOffset.UnixEpoch);
        rest.Finish();

        stream.Position = 0;
        var reader = new TarballReader(stream, Unlimited);
        foreach (var (name, bytes) in new[] { (BackupIndex.ChunkOf(BackupIndex.PresyncStream, 0), first), (BackupIndex.PresyncEnd, Array.Empty<byte>()),
                     (BackupIndex.ChunkOf(BackupIndex.ContainerStream, 0), second) })
        {
            var m = reader.Next();
            Assert.NotNull(m);
            Assert.Equal((name, (long)bytes.Length), (m.Name, m.Size));
            var back = new MemoryStream();
            var buffer = new byte[4096];
            for (int n; (n = reader.Read(buffer)) > 0;) back.Write(buffer, 0, n);
            Assert.Equal(bytes, back.ToArray());
        }
        Assert.Null(reader.Next());
    }

    [Fact]
    public void TarballWriter_output_is_read_by_GNU_tar()
    {
        using var dir = new TempDir();
        string file = dir.Combine("t.tar");
        using (var f = File.Create(file))
        {
            var writer = new TarballWriter(f);
            writer.AddFile("backup/index.yaml", 0x1a4, 3, new MemoryStream("{}\n"u8.ToArray()), DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));
            writer.Add(Member("backup/" + new string('n', 180), '0', 5), "backup/" + new string('n', 180), span => { "hello"u8.CopyTo(span); return 5; });
            writer.Finish();
        }
        var tar = Process.Start(new ProcessStartInfo("tar", ["-tf", file]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string listing = tar.StandardOutput.ReadToEnd();
        tar.WaitForExit();
        Assert.Equal(0, tar.ExitCode);
        Assert.Equal(["backup/index.yaml", "backup/" + new string('n', 180)], listing.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static BackupIndex Index(string backend = "btrfs", bool optimized = false, string[]? snapshots = null, string[]? described = null) =>
        new("c1", backend, "p", "container", optimized, false, snapshots ?? ["s0"],
            new BackupConfig(new BackupContainer("c1", new Dictionary<string, string> { ["user.x"] = "1" }, DateTimeOffset.UnixEpoch, new string('a', 64), null, "busybox"),
                [.. (described ?? snapshots ?? ["s0"]).Select(s => new BackupSnapshot(s, DateTimeOffset.UnixEpoch))]));

    [Fact]
    public void BackupIndex_round_trips_as_JSON_which_is_YAML()
    {
        var index = Index();
        var back = BackupIndex.Parse(index.ToBytes());
        Assert.Equal(index.Snapshots, back.Snapshots);
        Assert.Equal("1", back.Config.Container.Config["user.x"]);
        Assert.Contains("\"optimized\": false", Encoding.UTF8.GetString(index.ToBytes()));
    }

    [Theory]
    [InlineData("{\"name\": \"c1\"}", "not a valid index")]
    [InlineData("name: c1\nbackend: dir\n", "not a valid index")]
    [InlineData("null", "is empty")]
    public void BackupIndex_refuses_what_is_not_an_index(string text, string why)
    {
        var e = Assert.Throws<InvalidDataException>(() => BackupIndex.Parse(Encoding.UTF8.GetBytes(text)));
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void BackupIndex_refuses_an_index_that_contradicts_itself()
    {
        Assert.Contains("only btrfs ones are", Assert.Throws<InvalidDataException>(() => BackupIndex.Parse(Index("dir", optimized: true).ToBytes())).Message);
        Assert.Contains("which is not dir, btrfs or overlay", Assert.Throws<InvalidDataException>(() => BackupIndex.Parse(Index("zfs").ToBytes())).Message);
        Assert.Contains("but describes", Assert.Throws<InvalidDataException>(() => BackupIndex.Parse(Index(snapshots: ["a"], described: ["b"]).ToBytes())).Message);
        Assert.Contains("twice", Assert.Throws<InvalidDataException>(() => BackupIndex.Parse(Index(snapshots: ["a", "a"]).ToBytes())).Message);
        var vm = Index() with { Type = "virtual-machine" };
        Assert.Contains("not a container", Assert.Throws<InvalidDataException>(() => BackupIndex.Parse(vm.ToBytes())).Message);
    }

    [Fact]
    public async Task StreamPipe_moves_every_byte_and_reports_the_step_that_failed_first()
    {
        var data = new byte[10 << 20];
        new Random(3).NextBytes(data);
        var copy = new MemoryStream();
        await StreamPipe.RunAsync((s, ct) => s.WriteAsync(data, ct).AsTask(), (s, ct) => s.CopyToAsync(copy, ct), CancellationToken.None);
        Assert.Equal(data, copy.ToArray());

        var reading = await Assert.ThrowsAsync<InvalidDataException>(() => StreamPipe.RunAsync(async (s, ct) =>
        {
            while (true) await s.WriteAsync(data.AsMemory(0, 65536), ct);
        }, async (s, ct) =>
        {
            await s.ReadExactlyAsync(new byte[1000], ct);
            throw new InvalidDataException("reader refused");
        }, CancellationToken.None));
        Assert.Equal("reader refused", reading.Message);

        var writing = await Assert.ThrowsAsync<IOException>(() => StreamPipe.RunAsync((s, ct) => throw new IOException("writer broke"),
            (s, ct) => s.CopyToAsync(Stream.Null, ct), CancellationToken.None));
        Assert.Equal("writer broke", writing.Message);
    }
}
