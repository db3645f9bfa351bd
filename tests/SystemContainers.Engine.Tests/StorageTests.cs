using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Tests;

public class StorageTests
{
    private static readonly RootTarget At = new("/run/sc/web/rootfs", "/run/sc/web/layers");
    private static readonly Volume Web = new("web", "/state/containers/web");
    private static readonly VolumeSource Busybox = new("abc", "/state/images/abc/rootfs");

    [Fact]
    public void OverlayAttachesTheImageIdmappedAsATransientLowerThenMountsTheOverlayOnTheRoot()
    {
        var mounts = new OverlayDriver("/state/containers").RootMounts(Web, Busybox, new IdMap(1000000, 1000000, 65536), shifted: false, At);
        Assert.Equal(
            [
                new RootMount("bind", "/state/images/abc/rootfs", "/run/sc/web/layers/lower", Idmap: true, Transient: true),
                new RootMount("overlay", "overlay", "/run/sc/web/rootfs",
                    "lowerdir=/run/sc/web/layers/lower,upperdir=/state/containers/web/fs/upper,workdir=/state/containers/web/fs/work"),
            ], mounts);
        Assert.Equal(
            "root bind\nroot.source /state/images/abc/rootfs\nroot.target /run/sc/web/layers/lower\nroot.idmap 1\nroot.transient 1\n" +
            "root overlay\nroot.source overlay\nroot.target /run/sc/web/rootfs\nroot.idmap 0\n" +
            "root.data lowerdir=/run/sc/web/layers/lower,upperdir=/state/containers/web/fs/upper,workdir=/state/containers/web/fs/work\nend\n",
            new LaunchPlan().AddAll(mounts).ToString());
    }

    [Fact]
    public void APrivilegedOverlayUsesTheImageItself()
    {
        var mounts = new OverlayDriver("/state/containers").RootMounts(Web, Busybox, null, shifted: false, At);
        var only = Assert.Single(mounts);
        Assert.StartsWith("lowerdir=/state/images/abc/rootfs,", only.Data);
    }

    [Fact]
    public void DirAndBtrfsMountTheVolumeItselfIdmappedAndRefuseWhereIdmappedMountsAreUnavailable()
    {
        var map = new IdMap(1000000, 1000000, 65536);
        IStorageDriver[] drivers = [new DirDriver("/pool", ownsRoot: false), new BtrfsDriver("/pool", null, 0)];
        foreach (var driver in drivers)
        {
            Assert.Equal([RootMount.Bind("/pool/containers/web", At.Target, idmap: true)], driver.RootMounts(Web, Busybox, map, shifted: false, At));
            Assert.Equal([RootMount.Bind("/pool/containers/web", At.Target, idmap: false)], driver.RootMounts(Web, Busybox, null, shifted: false, At));
            var e = Assert.Throws<EngineException>(() => driver.RootMounts(Web, Busybox, map, shifted: true, At));
            Assert.Equal("IdmapUnavailable", e.Reason);
            Assert.Equal("/pool/containers/web", driver.UsageTree(Web));
        }
    }

    [Theory]
    [InlineData("123", 123L)]
    [InlineData("5GiB", 5L << 30)]
    [InlineData("256MiB", 256L << 20)]
    [InlineData("500MB", 500_000_000L)]
    [InlineData("2 TiB", 2L << 40)]
    public void ParsesSizes(string text, long bytes) => Assert.Equal(bytes, ByteSize.Parse("size", text));

    [Theory]
    [InlineData("5GiBs")]
    [InlineData("-1")]
    [InlineData("1.5GiB")]
    [InlineData("99999999999TiB")]
    public void RefusesWhatIsNotASize(string text) =>
        Assert.Equal("InvalidConfig", Assert.Throws<EngineException>(() => ByteSize.Parse("size", text)).Reason);

    [Theory]
    [InlineData("")]
    [InlineData("Bad")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("-x")]
    [InlineData("x-")]
    [InlineData("a.json")]
    public void RefusesBadPoolNames(string name) =>
        Assert.Equal("InvalidPoolName", Assert.Throws<EngineException>(() => StoragePoolName.Validate(name)).Reason);

    [Fact]
    public void ARecordWithoutAPoolReadsAsTheDefaultPoolsAndOneWithAPoolKeepsIt()
    {
        using var dir = new TempDir();
        var store = new StateStore(Path.Combine(dir.Path, "state"), Path.Combine(dir.Path, "run"));
        string ct = store.DirectoryOf("web");
        Directory.CreateDirectory(ct);
        var record = new ContainerRecord("web", "abc", null, new Dictionary<string, string>(), DateTimeOffset.UnixEpoch, null, "busybox");
        store.WriteConfig(ct, record);
        Assert.DoesNotContain("storagePool", File.ReadAllText(Path.Combine(ct, "config.json")));
        Assert.Null(store.ReadConfig("web").StoragePool);
        store.WriteConfig(ct, record with { StoragePool = "fast" });
        Assert.Equal("fast", store.ReadConfig("web").StoragePool);
    }
}
