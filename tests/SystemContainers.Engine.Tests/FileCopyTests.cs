using SystemContainers.Engine.Files;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Tests;

/// <summary>
/// FilePush on a real directory standing in for a container's root: hostile archives (escaping
/// names, an entry through a link the archive made, device nodes) change nothing outside it.
/// </summary>
public sealed class FilePushTests : IDisposable
{
    private const int AtCwd = -100;
    private static readonly IdMap Map = new(1_000_000, 1_100_000, 65536);
    private readonly TempDir _dir = new();
    private readonly string _root;

    public FilePushTests()
    {
        _root = _dir.Combine("root");
        Directory.CreateDirectory(Path.Combine(_root, "dest"));
    }

    public void Dispose() => _dir.Dispose();

    /// <summary>No container's gate to release: the directory stands in for its root.</summary>
    private sealed class NoLease : IDisposable
    {
        public void Dispose() { }
    }

    private async Task<FilePushResult> Push(RawTar tar, string destination = "/dest", bool force = false)
    {
        using var root = new ContainerRoot(Sys.Open(_root, Libc.O_RDONLY | Libc.O_DIRECTORY), Map, "c1", new NoLease());
        return await new FilePush(root, destination, force).ReadAsync(new MemoryStream(tar.Bytes()), CancellationToken.None);
    }

    [Fact]
    public async Task ShiftsOwnersThroughTheIdMapAndKeepsTheMode()
    {
        var done = await Push(new RawTar().Dir("d", mode: 0x1e8).Entry("d/f", data: "hello", mode: 0x1a0, uid: 5, gid: 6));
        Assert.Equal((1, 1, 5L), (done.Files, done.Directories, done.Bytes));
        var id = At.Stat(AtCwd, Path.Combine(_root, "dest/d/f"), "f");
        Assert.Equal((1_000_005u, 1_100_006u, 0x1a0u), (id.Uid, id.Gid, id.Mode & 0xfff));
        Assert.Equal("hello", File.ReadAllText(Path.Combine(_root, "dest/d/f")));
    }

    [Theory]
    [InlineData("../escaped")]
    [InlineData("/escaped")]
    [InlineData("a/../../escaped")]
    public async Task RefusesANameThatIsNotAPlainRelativePath(string name)
    {
        var e = await Assert.ThrowsAsync<EngineException>(() => Push(new RawTar().Entry(name, data: "x")));
        Assert.Equal("InvalidArchive", e.Reason);
        Assert.False(File.Exists(_dir.Combine("escaped")));
        Assert.False(File.Exists(Path.Combine(_root, "escaped")));
    }

    [Fact]
    public async Task NeverWritesThroughALinkTheArchiveMade()
    {
        string outside = _dir.Combine("outside");
        Directory.CreateDirectory(outside);
        var e = await Assert.ThrowsAsync<EngineException>(() =>
            Push(new RawTar().Entry("up", type: '2', link: outside).Entry("up/pwned", data: "x")));
        Assert.Equal("PathEscapes", e.Reason);
        Assert.Empty(Directory.GetFileSystemEntries(outside));
        Assert.Equal(outside, new FileInfo(Path.Combine(_root, "dest/up")).LinkTarget);
    }

    [Fact]
    public async Task SkipsDeviceNodesFifosAndHardLinks()
    {
        var done = await Push(new RawTar().Entry("null", type: '3').Entry("disk", type: '4').Entry("pipe", type: '6').Entry("f", data: "x")
            .Entry("hard", type: '1', link: "f"));
        Assert.Equal(4, done.Skipped.Count);
        Assert.Equal(["f"], Directory.GetFileSystemEntries(Path.Combine(_root, "dest")).Select(p => Path.GetFileName(p)).ToArray());
    }

    [Fact]
    public async Task RefusesAnOwnerTheMapDoesNotHaveAndLeavesNoTemporaryFile()
    {
        var e = await Assert.ThrowsAsync<EngineException>(() => Push(new RawTar().Entry("f", data: "x", uid: 70000)));
        Assert.Equal("InvalidUser", e.Reason);
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(_root, "dest")));
    }

    [Fact]
    public async Task ReplacesAFileOnlyWithForce()
    {
        File.WriteAllText(Path.Combine(_root, "dest/f"), "old");
        var e = await Assert.ThrowsAsync<EngineException>(() => Push(new RawTar().Entry("f", data: "new")));
        Assert.Equal("FileExists", e.Reason);
        Assert.Equal("old", File.ReadAllText(Path.Combine(_root, "dest/f")));
        await Push(new RawTar().Entry("f", data: "new"), force: true);
        Assert.Equal("new", File.ReadAllText(Path.Combine(_root, "dest/f")));
    }
}

/// <summary>A file that changes size while it is read keeps the size its archive header gave.</summary>
public sealed class FixedLengthStreamTests
{
    [Theory]
    [InlineData(5, "hello", false)]
    [InlineData(10, "hello world", false)]
    [InlineData(14, "hello world\0\0\0", true)]
    public void ReadsExactlyTheLengthItWasGiven(int length, string expected, bool padded)
    {
        using var s = new FixedLengthStream(new MemoryStream("hello world"u8.ToArray()), length, "/f");
        var copy = new MemoryStream();
        s.CopyTo(copy);
        Assert.Equal(expected[..length], System.Text.Encoding.UTF8.GetString(copy.ToArray()));
        Assert.Equal(padded, s.Problem is not null);
    }
}
