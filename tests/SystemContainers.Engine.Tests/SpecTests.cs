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
    [InlineData("web\n")]
    [InlineData("web\r\n")]
    [InlineData("caf\u00e9")]
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
        Assert.True(ContainerConfig.Empty.IsLxcfs);
        Assert.False(ContainerConfig.Parse(new Dictionary<string, string> { ["security.lxcfs"] = "off" }).IsLxcfs);
        Assert.Equal(TimeSpan.FromSeconds(5), c.StopTimeoutValue);
        Assert.Equal([KeyValuePair.Create("FOO", "bar")], c.Environment.ToList());
    }

    [Theory]
    [InlineData("limits.bogus", "1", "UnknownConfigKey")]
    [InlineData("security.privileged", "maybe", "InvalidConfigValue")]
    [InlineData("security.nesting", "2", "InvalidConfigValue")]
    [InlineData("security.lxcfs", "maybe", "InvalidConfigValue")]
    [InlineData("security.idmap.base", "-5", "InvalidConfigValue")]
    [InlineData("security.idmap.size", "100", "InvalidConfigValue")]
    [InlineData("boot.stop.timeout", "soon", "InvalidConfigValue")]
    [InlineData("environment.A=B", "x", "InvalidConfigKey")]
    [InlineData("environment.", "x", "UnknownConfigKey")]
    [InlineData("user.x", "line\nbreak", "InvalidConfigValue")]
    [InlineData("user.x", "nul\0", "InvalidConfigValue")]
    [InlineData("user.a b", "x", "InvalidConfigKey")]
    [InlineData("environment.A\u0001", "x", "InvalidConfigKey")]
    [InlineData("security.idmap.isolated", "perhaps", "InvalidConfigValue")]
    [InlineData("security.idmap.base", "4294901760", "InvalidConfigValue")]
    [InlineData("security.idmap.size", "4294967295", "InvalidConfigValue")]
    [InlineData("security.syscalls.allow", "keyctl,init_module", "InvalidConfigValue")]
    [InlineData("limits.cpu", "0-99999999999", "InvalidConfigValue")]
    [InlineData("limits.cpu", "99999999999", "InvalidConfigValue")]
    [InlineData("limits.cpu", "0\n", "InvalidConfigValue")]
    [InlineData("limits.cpu", "\u0661", "InvalidConfigValue")]
    [InlineData("limits.cpu.allowance", "100000000000ms/1ms", "InvalidConfigValue")]
    [InlineData("limits.cpu.allowance", "1001s/1s", "InvalidConfigValue")]
    [InlineData("limits.memory", "NaN%", "InvalidConfigValue")]
    [InlineData("limits.memory", "Infinity%", "InvalidConfigValue")]
    [InlineData("limits.memory", "1e-300%", "InvalidConfigValue")]
    [InlineData("limits.memory", "0.000001%", "InvalidConfigValue")]
    [InlineData("limits.memory", "99999999999999999999TB", "InvalidConfigValue")]
    public void RefusesBadKeysAndValues(string key, string value, string reason)
    {
        var e = Assert.Throws<EngineException>(() => ContainerConfig.Parse(new Dictionary<string, string> { [key] = value }));
        Assert.Equal(reason, e.Reason);
        Assert.Contains(DisplayText.Escape(key.TrimEnd('.')), e.Message);
    }

    [Fact]
    public void TakesTheBoundaryValues()
    {
        var c = ContainerConfig.Parse(new Dictionary<string, string>
        {
            ["security.idmap.base"] = "4294901759", ["limits.cpu.allowance"] = "1000s/1s", ["limits.memory"] = "4MiB",
            ["security.syscalls.allow"] = string.Join(",", SyscallAllowList.Allowable),
            ["environment.BIG"] = new string('e', ExecLimits.MaxStringBytes - "BIG=".Length),
        });
        Assert.Equal(4294901759, c.IdmapBaseValue);
        Assert.Equal(1_000_000_000, c.Limits.CpuQuotaMicroseconds);
        Assert.Equal(SyscallAllowList.Allowable, c.SyscallsAllowed);
    }

    [Fact]
    public void RefusesEnvironmentKeysPastTheirShare()
    {
        var values = Enumerable.Range(0, 5).ToDictionary(i => $"environment.V{i}", _ => new string('v', 120_000));
        var e = Assert.Throws<EngineException>(() => ContainerConfig.Parse(values));
        Assert.Contains($"at most {ExecLimits.MaxConfigEnvironmentBytes}", e.Message);
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
    [InlineData("4294901760", "65536")]
    public void AnExplicitBaseAmongTheSystemsIdsOrPast32BitsIsRefused(string idBase, string size)
    {
        var e = Assert.Throws<EngineException>(() =>
            ContainerConfig.Parse(new Dictionary<string, string> { ["security.idmap.base"] = idBase, ["security.idmap.size"] = size }));
        Assert.Equal("InvalidConfigValue", e.Reason);
    }

    [Fact]
    public void ASharedMapLargerThanRootsRangeIsRefused()
    {
        var config = ContainerConfig.Parse(new Dictionary<string, string> { ["security.idmap.isolated"] = "false", ["security.idmap.size"] = "1500000000" });
        var e = Assert.Throws<EngineException>(() => IdMap.ForConfig(config, [], "/nonexistent"));
        Assert.Equal("InvalidConfigValue", e.Reason);
    }
}

public class ConfigKeyCaseTests
{
    [Theory]
    [InlineData("Limits.Memory", "limits.memory")]
    [InlineData("BOOT.AUTOSTART", "boot.autostart")]
    [InlineData("Environment.Path", "environment.Path")]
    [InlineData("USER.MyNote", "user.MyNote")]
    [InlineData("NIC.eth0.Network", "nic.eth0.network")]
    [InlineData("Proxy.web.LISTEN", "proxy.web.listen")]
    [InlineData("Disk.Data.ReadOnly", "disk.Data.readonly")]
    [InlineData("limits.bogus", "limits.bogus")]
    public void StoresTheListedSpelling(string given, string stored) => Assert.Equal(stored, ContainerConfig.CanonicalKey(given));

    [Fact]
    public void RefusesOneKeyGivenTwice()
    {
        var e = Assert.Throws<EngineException>(() => ContainerConfig.Parse(new Dictionary<string, string> { ["limits.memory"] = "1MiB", ["Limits.Memory"] = "2MiB" }));
        Assert.Equal("InvalidConfigKey", e.Reason);
    }
}

public class ProxySpecTests
{
    private static IReadOnlyList<ProxySpec> Parse(string listen, string connect) =>
        ContainerConfig.Parse(new Dictionary<string, string> { ["proxy.web.listen"] = listen, ["proxy.web.connect"] = connect }).Proxies;

    [Fact]
    public void ParsesIPv4AndBracketedIPv6()
    {
        var p = Assert.Single(Parse("tcp:0.0.0.0:8080", "tcp:[::1]:80"));
        Assert.Equal("web", p.Device);
        Assert.Equal(8080, p.Listen.Port);
        Assert.Equal(System.Net.IPAddress.IPv6Loopback, p.Connect.Address);
        Assert.Equal("tcp:[::1]:80", p.Connect.ToString());
    }

    [Fact]
    public void ParsesUdpOnBothSidesAndRefusesMixedProtocols()
    {
        var p = Assert.Single(Parse("udp:127.0.0.1:5353", "udp:[::1]:53"));
        Assert.Equal("udp", p.Listen.Protocol);
        Assert.Equal("udp:[::1]:53", p.Connect.ToString());
        var e = Assert.Throws<EngineException>(() => Parse("udp:127.0.0.1:53", "tcp:127.0.0.1:53"));
        Assert.Equal("InvalidConfigValue", e.Reason);
        Assert.Contains("listens on udp but connects with tcp", e.Message);
    }

    [Theory]
    [InlineData("tcp:1.2.3:80")]
    [InlineData("tcp:127.0.0.1:0")]
    [InlineData("tcp:127.0.0.1:65536")]
    [InlineData("tcp:::1:80")]
    [InlineData("sctp:127.0.0.1:53")]
    [InlineData("127.0.0.1:80")]
    [InlineData("tcp:localhost:80")]
    [InlineData("tcp:[fe80::1%eth0]:80")]
    [InlineData("tcp:127.0.0.1:+80")]
    public void RefusesOtherForms(string listen)
    {
        var e = Assert.Throws<EngineException>(() => Parse(listen, "tcp:127.0.0.1:80"));
        Assert.Equal("InvalidConfigValue", e.Reason);
        Assert.Contains("proxy.web.listen", e.Message);
    }

    [Fact]
    public void RefusesAHalfDeviceAnUnknownPropertyAndANameANicHas()
    {
        Assert.Contains("needs proxy.web.connect", Assert.Throws<EngineException>(() =>
            ContainerConfig.Parse(new Dictionary<string, string> { ["proxy.web.listen"] = "tcp:127.0.0.1:80" })).Message);
        Assert.Equal("UnknownConfigKey", Assert.Throws<EngineException>(() =>
            ContainerConfig.Parse(new Dictionary<string, string> { ["proxy.web.bind"] = "host" })).Reason);
        Assert.Equal("InvalidConfigKey", Assert.Throws<EngineException>(() => ContainerConfig.Parse(new Dictionary<string, string>
        {
            ["nic.eth0.network"] = "lan", ["proxy.eth0.listen"] = "tcp:127.0.0.1:80", ["proxy.eth0.connect"] = "tcp:127.0.0.1:80",
        })).Reason);
        Assert.Equal("InvalidConfigKey", Assert.Throws<EngineException>(() =>
            ContainerConfig.Parse(new Dictionary<string, string> { ["proxy.web\n.listen"] = "tcp:127.0.0.1:80" })).Reason);
    }
}

public class DiskSpecTests
{
    private static IReadOnlyList<DiskSpec> Parse(params (string Key, string Value)[] keys) =>
        ContainerConfig.Parse(keys.ToDictionary(k => k.Key, k => k.Value)).Disks;

    [Fact]
    public void DefaultsToWritableAndShifted()
    {
        var d = Assert.Single(Parse(("disk.data.source", "/srv/data"), ("disk.data.path", "/mnt/data")));
        Assert.Equal(new DiskSpec("data", "/srv/data", "/mnt/data", ReadOnly: false, Shift: true), d);
        var ro = Assert.Single(Parse(("disk.data.source", "/srv/data"), ("disk.data.path", "/mnt/data"), ("disk.data.readonly", "yes"), ("disk.data.shift", "false")));
        Assert.True(ro.ReadOnly);
        Assert.False(ro.Shift);
    }

    [Theory]
    [InlineData("disk.d.source", "srv", "must be an absolute path")]
    [InlineData("disk.d.source", "/srv/", "must be an absolute path")]
    [InlineData("disk.d.path", "/mnt//x", "must be an absolute path")]
    [InlineData("disk.d.path", "/mnt/./x", "must be an absolute path")]
    [InlineData("disk.d.path", "/mnt/../etc", "must be an absolute path")]
    [InlineData("disk.d.path", "/", "not on /, /proc or /sys")]
    [InlineData("disk.d.path", "/proc", "not on /, /proc or /sys")]
    [InlineData("disk.d.path", "/sys/fs/cgroup", "not on /, /proc or /sys")]
    [InlineData("disk.d.readonly", "maybe", "must be true or false")]
    [InlineData("disk.d.shift", "2", "must be true or false")]
    public void RefusesBadValues(string key, string value, string message)
    {
        var keys = new Dictionary<string, string> { ["disk.d.source"] = "/srv/data", ["disk.d.path"] = "/mnt/data", [key] = value };
        var e = Assert.Throws<EngineException>(() => ContainerConfig.Parse(keys));
        Assert.Equal("InvalidConfigValue", e.Reason);
        Assert.Contains(key, e.Message);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void KeepsAPathThatOnlyBeginsLikeProc() =>
        Assert.Equal("/procedures", Assert.Single(Parse(("disk.d.source", "/srv"), ("disk.d.path", "/procedures"))).Path);

    [Fact]
    public void RefusesAHalfDeviceTwoDisksAtOnePathAndANameAProxyHas()
    {
        Assert.Contains("needs disk.d.path", Assert.Throws<EngineException>(() => Parse(("disk.d.source", "/srv"))).Message);
        Assert.Contains("both mounted at '/mnt'", Assert.Throws<EngineException>(() =>
            Parse(("disk.a.source", "/srv"), ("disk.a.path", "/mnt"), ("disk.b.source", "/opt"), ("disk.b.path", "/mnt"))).Message);
        Assert.Contains("used by a proxy device and a disk device", Assert.Throws<EngineException>(() => Parse(
            ("proxy.d.listen", "tcp:127.0.0.1:80"), ("proxy.d.connect", "tcp:127.0.0.1:80"), ("disk.d.source", "/srv"), ("disk.d.path", "/mnt"))).Message);
        Assert.Equal("UnknownConfigKey", Assert.Throws<EngineException>(() => Parse(("disk.d.size", "1G"))).Reason);
    }

    [Fact]
    public void ChecksTheSourceOnlyWhenAsked()
    {
        var d = Assert.Single(Parse(("disk.d.source", "/nonexistent-sc-source"), ("disk.d.path", "/mnt")));
        Assert.Contains("does not exist on the host", Assert.Throws<EngineException>(d.CheckSource).Message);
        new DiskSpec("d", "/etc/passwd", "/mnt/f", false, true).CheckSource();
    }
}

public class ExecLimitsTests
{
    private static readonly Dictionary<string, string> NoEnvironment = new();

    [Fact]
    public void TakesACommandAtTheLimits()
    {
        ExecLimits.CheckProcess([.. Enumerable.Repeat("a", ExecLimits.MaxArguments)], NoEnvironment);
        ExecLimits.CheckProcess(["echo", new string('w', ExecLimits.MaxStringBytes)], NoEnvironment);
    }

    [Theory]
    [InlineData(new[] { "" }, "must not be empty")]
    [InlineData(new[] { "echo", null }, "argument 1 of the command is null")]
    [InlineData(new[] { "echo", "a\0b" }, "contains a NUL")]
    [InlineData(new[] { "echo", "a\nb" }, "contains a newline")]
    public void RefusesBadArguments(string?[] command, string message)
    {
        var e = Assert.Throws<EngineException>(() => ExecLimits.CheckProcess(command, NoEnvironment));
        Assert.Equal(FailureKind.InvalidArgument, e.Kind);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void RefusesTooManyOrTooLongArguments()
    {
        Assert.Contains("at most 1024", Assert.Throws<EngineException>(() =>
            ExecLimits.CheckProcess([.. Enumerable.Repeat("a", ExecLimits.MaxArguments + 1)], NoEnvironment)).Message);
        Assert.Contains("at most 131071", Assert.Throws<EngineException>(() =>
            ExecLimits.CheckProcess(["echo", new string('w', ExecLimits.MaxStringBytes + 1)], NoEnvironment)).Message);
        Assert.Contains("at most 1048576", Assert.Throws<EngineException>(() =>
            ExecLimits.CheckProcess([.. Enumerable.Repeat(new string('w', 100_000), 11)], NoEnvironment)).Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("A=B")]
    [InlineData("A\nB")]
    [InlineData("A\0")]
    public void RefusesBadVariableNames(string name)
    {
        var e = Assert.Throws<EngineException>(() => ExecLimits.CheckProcess(["true"], new Dictionary<string, string> { [name] = "x" }));
        Assert.Equal("InvalidEnvironment", e.Reason);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Theory]
    [InlineData("relative")]
    [InlineData("/a\0b")]
    public void RefusesBadWorkingDirectories(string cwd) =>
        Assert.Equal("InvalidWorkingDirectory", Assert.Throws<EngineException>(() => ExecLimits.CheckWorkingDirectory(cwd)).Reason);

    [Fact]
    public void RefusesAWorkingDirectoryPastPathMax() =>
        Assert.Throws<EngineException>(() => ExecLimits.CheckWorkingDirectory("/" + new string('d', ExecLimits.MaxPathBytes)));
}
