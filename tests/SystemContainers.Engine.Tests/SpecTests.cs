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
            ["security.privileged"] = "true", ["boot.stop.timeout"] = "5", ["environment.FOO"] = "bar", ["user.note"] = "x",
        });
        Assert.True(c.IsPrivileged);
        Assert.Equal(TimeSpan.FromSeconds(5), c.StopTimeoutValue);
        Assert.Equal([KeyValuePair.Create("FOO", "bar")], c.Environment.ToList());
    }

    [Theory]
    [InlineData("limits.bogus", "1", "UnknownConfigKey")]
    [InlineData("security.privileged", "maybe", "InvalidConfigValue")]
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
    [Fact]
    public void UsesRootsSubordinateRangesWhenLargeEnough()
    {
        using var etc = new TempDir();
        File.WriteAllText(etc.Combine("subuid"), "alice:100000:65536\nroot:200000:1000\nroot:300000:65536\n");
        File.WriteAllText(etc.Combine("subgid"), "0:400000:65536\n");
        var map = IdMap.ForConfig(ContainerConfig.Empty, etc.Path);
        Assert.Equal(300000, map.UidBase);
        Assert.Equal(400000, map.GidBase);
        Assert.Equal(65536, map.Size);
    }

    [Fact]
    public void FallsBackToOneMillion()
    {
        using var etc = new TempDir();
        var map = IdMap.ForConfig(ContainerConfig.Empty, etc.Path);
        Assert.Equal(new IdMap(1_000_000, 1_000_000, 65536), map);
    }

    [Fact]
    public void ConfigOverridesTheRange()
    {
        var config = ContainerConfig.Parse(new Dictionary<string, string> { ["security.idmap.base"] = "2000000", ["security.idmap.size"] = "131072" });
        Assert.Equal(new IdMap(2_000_000, 2_000_000, 131072), IdMap.ForConfig(config, "/nonexistent"));
    }
}
