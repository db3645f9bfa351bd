using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Tests;

public class ContainerNameTests
{
    [Theory]
    [InlineData("web")]
    [InlineData("web-1")]
    [InlineData("A1")]
    [InlineData("x")]
    public void AcceptsHostnameLabels(string name) => ContainerName.Validate(name);

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("a..b")]
    [InlineData("has space")]
    [InlineData("1abc")]
    [InlineData("trailing-")]
    [InlineData("-lead")]
    [InlineData("under_score")]
    public void RefusesBadNames(string name)
    {
        var e = Assert.Throws<EngineException>(() => ContainerName.Validate(name));
        Assert.Equal(FailureKind.InvalidArgument, e.Kind);
        Assert.Equal("InvalidName", e.Reason);
    }

    [Fact]
    public void RefusesNamesOver63Characters()
    {
        ContainerName.Validate("a" + new string('b', 62));
        var e = Assert.Throws<EngineException>(() => ContainerName.Validate("a" + new string('b', 63)));
        Assert.Contains("longer than 63", e.Message);
    }
}

public class ContainerConfigTests
{
    [Fact]
    public void ParsesKnownKeys()
    {
        var c = ContainerConfig.Parse(new Dictionary<string, string>
        {
            ["security.privileged"] = "true", ["security.nesting"] = "yes", ["boot.stop.timeout"] = "5", ["environment.FOO"] = "bar", ["user.note"] = "x",
        });
        Assert.True(c.IsPrivileged);
        Assert.True(c.IsNesting);
        Assert.False(ContainerConfig.Empty.IsNesting);
        Assert.Equal(TimeSpan.FromSeconds(5), c.StopTimeoutValue);
        Assert.Equal([KeyValuePair.Create("FOO", "bar")], c.Environment.ToList());
    }

    [Theory]
    [InlineData("limits.bogus", "1", "UnknownConfigKey")]
    [InlineData("security.privileged", "maybe", "InvalidConfigValue")]
    [InlineData("security.nesting", "2", "InvalidConfigValue")]
    [InlineData("security.idmap.base", "-5", "InvalidConfigValue")]
    [InlineData("security.idmap.size", "100", "InvalidConfigValue")]
    [InlineData("boot.stop.timeout", "soon", "InvalidConfigValue")]
    [InlineData("environment.A=B", "x", "InvalidConfigKey")]
    [InlineData("environment.", "x", "UnknownConfigKey")]
    [InlineData("user.x", "line\nbreak", "InvalidConfigValue")]
    public void RefusesBadKeysAndValues(string key, string value, string reason)
    {
        var e = Assert.Throws<EngineException>(() => ContainerConfig.Parse(new Dictionary<string, string> { [key] = value }));
        Assert.Equal(reason, e.Reason);
        Assert.Contains(key.TrimEnd('.'), e.Message);
    }

    [Fact]
    public void DefaultStopTimeoutIs30Seconds() => Assert.Equal(TimeSpan.FromSeconds(30), ContainerConfig.Empty.StopTimeoutValue);
}

public class IdMapTests
{
    private static readonly ContainerConfig Shared = ContainerConfig.Parse(new Dictionary<string, string> { ["security.idmap.isolated"] = "false" });

    private static TempDir Etc(string subuid, string subgid)
    {
        var etc = new TempDir();
        File.WriteAllText(etc.Combine("subuid"), subuid);
        File.WriteAllText(etc.Combine("subgid"), subgid);
        return etc;
    }

    [Fact]
    public void ASharedMapIsTheFirstBlockOfRootsSubordinateRanges()
    {
        using var etc = Etc("alice:100000:65536\nroot:200000:1000\nroot:300000:65536\n", "0:400000:65536\n");
        Assert.Equal(new IdMap(300000, 400000, 65536), IdMap.ForConfig(Shared, [], etc.Path));
        // Shared maps are everybody's: handing one out again is the point.
        Assert.Equal(new IdMap(300000, 400000, 65536), IdMap.ForConfig(Shared, [new IdMap(300000, 400000, 65536)], etc.Path));
    }

    [Fact]
    public void WithoutSubordinateRangesRootGetsLxdsDefaultPool()
    {
        using var etc = new TempDir();
        Assert.Equal(new IdMap(1_000_000, 1_000_000, 65536), IdMap.ForConfig(Shared, [], etc.Path));
        Assert.Equal(new IdMap(1_065_536, 1_065_536, 65536), IdMap.ForConfig(ContainerConfig.Empty, [], etc.Path));
    }

    [Fact]
    public void IsolatedMapsAreBlocksOfTheirOwnPastTheSharedOneAndFreedBlocksAreReused()
    {
        using var etc = Etc("root:1000000:1000000\n", "root:5000000:1000000\n");
        var taken = new List<IdMap>();
        for (int i = 0; i < 3; i++) taken.Add(IdMap.ForConfig(ContainerConfig.Empty, taken, etc.Path));
        Assert.Equal([1_065_536L, 1_131_072L, 1_196_608L], taken.Select(m => m.UidBase));
        Assert.Equal([5_065_536L, 5_131_072L, 5_196_608L], taken.Select(m => m.GidBase));
        Assert.False(taken[0].Overlaps(taken[1]));
        taken.RemoveAt(1);
        Assert.Equal(new IdMap(1_131_072, 5_131_072, 65536), IdMap.ForConfig(ContainerConfig.Empty, taken, etc.Path));
        // A block some explicit map overlaps only in part is not free either.
        var odd = new List<IdMap> { new(1_070_000, 5_070_000, 65536) };
        Assert.Equal(new IdMap(1_196_608, 5_196_608, 65536), IdMap.ForConfig(ContainerConfig.Empty, odd, etc.Path));
    }

    [Fact]
    public void ASecondRangeServesWhenTheFirstIsFullAndNoneLeftIsAClearError()
    {
        using var etc = Etc("root:1000000:131072\nroot:9000000:65536\n", "root:1000000:131072\nroot:9000000:65536\n");
        var first = IdMap.ForConfig(ContainerConfig.Empty, [], etc.Path);
        Assert.Equal(1_065_536, first.UidBase);
        var second = IdMap.ForConfig(ContainerConfig.Empty, [first], etc.Path);
        Assert.Equal(9_000_000, second.UidBase);
        var e = Assert.Throws<EngineException>(() => IdMap.ForConfig(ContainerConfig.Empty, [first, second], etc.Path));
        Assert.Equal("IdRangeExhausted", e.Reason);
        Assert.Contains(etc.Combine("subuid"), e.Message);
    }

    [Fact]
    public void AnExplicitBaseIsTakenAsGivenWithinBounds()
    {
        var config = ContainerConfig.Parse(new Dictionary<string, string> { ["security.idmap.base"] = "2000000", ["security.idmap.size"] = "131072" });
        Assert.Equal(new IdMap(2_000_000, 2_000_000, 131072), IdMap.ForConfig(config, [], "/nonexistent"));
        var clash = Assert.Throws<EngineException>(() => IdMap.ForConfig(config, [new IdMap(2_100_000, 2_100_000, 65536)], "/nonexistent"));
        Assert.Equal("IdRangeInUse", clash.Reason);
    }

    [Theory]
    [InlineData("1000", "65536")]
    [InlineData("4294967000", "65536")]
    public void AnExplicitBaseAmongTheSystemsIdsOrPast32BitsIsRefused(string idBase, string size)
    {
        var config = ContainerConfig.Parse(new Dictionary<string, string> { ["security.idmap.base"] = idBase, ["security.idmap.size"] = size });
        var e = Assert.Throws<EngineException>(() => IdMap.ForConfig(config, [], "/nonexistent"));
        Assert.Equal("InvalidConfigValue", e.Reason);
    }
}
