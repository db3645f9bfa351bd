using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Tests;

public class StateStoreTests
{
    [Fact]
    public void RoundTripsRecordsAndLeavesNoTempFiles()
    {
        using var dir = new TempDir();
        var store = new StateStore(Path.Combine(dir.Path, "state"), Path.Combine(dir.Path, "run"));
        string ct = store.DirectoryOf("web");
        Directory.CreateDirectory(ct);
        var record = new ContainerRecord("web", "abc", "busybox", new Dictionary<string, string> { ["user.a"] = "b" },
            DateTimeOffset.UnixEpoch, new IdMap(1, 2, 65536), "busybox");
        store.WriteConfig(ct, record);
        var runtime = new RuntimeRecord(true, 42, 123456, DateTimeOffset.UnixEpoch, null, null, null, false);
        store.WriteRuntime("web", runtime);
        store.WriteRuntime("web", runtime with { Pid = 43 });

        Assert.Equal(["web"], store.Names());
        var read = store.ReadConfig("web");
        Assert.Equal(record.IdMap, read.IdMap);
        Assert.Equal("b", read.Config["user.a"]);
        Assert.Equal(43, store.ReadRuntime("web").Pid);
        Assert.Equal(["config.json"], Directory.GetFiles(ct).Select(Path.GetFileName));
        Assert.Equal(["state.json"], Directory.GetFiles(store.RunDirectoryOf("web")).Select(Path.GetFileName));
    }

    [Fact]
    public void MovesARuntimeRecordFromTheStateDirectory()
    {
        using var dir = new TempDir();
        var store = new StateStore(Path.Combine(dir.Path, "state"), Path.Combine(dir.Path, "run"));
        string old = Path.Combine(store.DirectoryOf("web"), "state.json");
        Directory.CreateDirectory(store.DirectoryOf("web"));
        File.WriteAllText(old, """{"running": true, "pid": 42, "pidStartTime": 7, "shifted": false, "schemaVersion": 1}""");

        Assert.Equal(42, store.ReadRuntime("web").Pid);
        Assert.False(File.Exists(old));
        Assert.Equal(42, store.ReadRuntime("web").Pid);
    }

    [Fact]
    public void StartTimeIdentifiesAProcess()
    {
        ulong? self = ProcStat.StartTime(Environment.ProcessId);
        Assert.NotNull(self);
        Assert.Equal(self, ProcStat.StartTime(Environment.ProcessId));
        Assert.Null(ProcStat.StartTime(int.MaxValue));
    }
}

public class LaunchPlanTests
{
    [Fact]
    public void WritesKeyValueLinesAndEnd()
    {
        var plan = new LaunchPlan().Add("hostname", "web").Add("uid", 0).AddAll("arg", ["/bin/sh", "-c", "echo a b"]);
        Assert.Equal("hostname web\nuid 0\narg /bin/sh\narg -c\narg echo a b\nend\n", plan.ToString());
    }

    [Fact]
    public void RefusesNewlinesThatWouldForgeKeys()
    {
        var e = Assert.Throws<EngineException>(() => new LaunchPlan().Add("arg", "x\nuserns 0"));
        Assert.Equal(FailureKind.InvalidArgument, e.Kind);
    }

    [Fact]
    public void ParsesHelperReplies()
    {
        Assert.Equal((42, null), ScInit.ParseReply("pid 42\n"));
        Assert.Equal((null, "cannot mount proc on proc: EPERM"), ScInit.ParseReply("error cannot mount proc on proc: EPERM\n"));
        Assert.Equal((null, null), ScInit.ParseReply(""));
    }
}

public class NetnsAddressesTests
{
    [Fact]
    public void ReadsLocalAddressesFromFibTrie()
    {
        string[] trie =
        [
            "Main:", "  +-- 0.0.0.0/0 3 0 5", "     |-- 0.0.0.0", "        /0 universe UNICAST",
            "Local:", "  +-- 10.0.3.0/24 2 0 2", "     |-- 10.0.3.15", "        /32 host LOCAL",
            "     |-- 10.0.3.255", "        /32 link BROADCAST", "     |-- 127.0.0.1", "        /32 host LOCAL",
            "     |-- 10.0.3.15", "        /32 host LOCAL",
        ];
        Assert.Equal(["10.0.3.15"], NetnsAddresses.V4FromFibTrie(trie));
    }

    [Fact]
    public void ReadsUsableGlobalIPv6AddressesOnly()
    {
        string[] lines =
        [
            "00000000000000000000000000000001 01 80 10 80       lo",
            "fe80000000000000021122fffe334455 02 40 20 80     eth0",
            "fd420000000000000000000000000007 02 40 00 80     eth0",
            "fd420000000000000000000000000008 02 40 00 c0     eth0",
            "fd420000000000000000000000000009 02 40 00 08     eth0",
        ];
        Assert.Equal(["fd42::7"], NetnsAddresses.V6FromIfInet6(lines));
    }
}
