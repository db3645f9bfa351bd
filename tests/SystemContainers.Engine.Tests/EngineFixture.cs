using SystemContainers.Engine.Containers;
using System.Diagnostics;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Images;

namespace SystemContainers.Engine.Tests;

/// <summary>
/// A real engine over a scratch state directory with a busybox image, for root integration
/// tests. sc-init comes from SYSTEMCONTAINERS_SC_INIT (build.ps1 sets it) or is compiled here.
/// </summary>
public sealed class EngineFixture : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly List<ContainerService> _managers = [];

    public EngineFixture()
    {
        ScInitPath = Environment.GetEnvironmentVariable("SYSTEMCONTAINERS_SC_INIT") is { Length: > 0 } p && File.Exists(p) ? p : CompileScInit();
        Images = new ImageStore(_dir.Combine("state"));
        string tar = _dir.Combine("busybox.tar");
        BusyboxImageBuilder.Build("/bin/busybox", tar);
        Busybox = Images.ImportAsync(tar, "busybox", "test", null, default).GetAwaiter().GetResult().Fingerprint;
    }

    public string ScInitPath { get; }
    public ImageStore Images { get; }
    public string Busybox { get; }
    public string StateDir => _dir.Combine("state");
    public string RunDir => _dir.Combine("run");
    public string Group { get; } = $"sc-xunit-{Guid.NewGuid():N}"[..18];

    public ContainerService NewManager(bool shiftIds = false)
    {
        var m = new ContainerService(new EngineOptions
        {
            StateDir = StateDir, RunDir = RunDir, CacheDir = _dir.Combine("cache"), ScInitPath = ScInitPath,
            CgroupGroup = Group, ShiftIds = shiftIds, DefaultNetwork = null,
        }, Images, CgroupDriverFactory.Detect(Group));
        _managers.Add(m);
        return m;
    }

    private string CompileScInit()
    {
        string dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "build.ps1"))) dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("repository root not found");
        string output = _dir.Combine("sc-init");
        // Linked as build.ps1 links it: wholly static where the static libc is there.
        string[] link = Path.IsPathRooted(Run("cc", "-print-file-name=libc.a")) ? ["-static", "-lseccomp"] : ["-Wl,-Bstatic", "-lseccomp", "-Wl,-Bdynamic"];
        using var cc = Process.Start("cc", ["-O2", "-o", output, Path.Combine(dir, "src/native/sc-init.c"), .. link])!;
        cc.WaitForExit();
        if (cc.ExitCode != 0) throw new InvalidOperationException("cannot compile sc-init");
        return output;
    }

    private static string Run(string file, string argument)
    {
        using var p = Process.Start(new ProcessStartInfo(file, argument) { RedirectStandardOutput = true })!;
        string output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return output;
    }

    public void Dispose()
    {
        foreach (var m in _managers)
        {
            // A test may have removed a container through another manager of the same state.
            foreach (var c in m.List())
            {
                try { m.DeleteAsync(c.Name, force: true).GetAwaiter().GetResult(); }
                catch (Exception e) when (e is EngineException or IOException) { }
            }
            m.Dispose();
        }
        // The managers share one run directory and so one lxcfs, which each left running for the next.
        if (_managers.Count > 0)
        {
            using var last = NewManager();
            last.Lxcfs.Stop();
        }
        _dir.Dispose();
    }
}

[CollectionDefinition("engine")]
public class EngineCollection : ICollectionFixture<EngineFixture>;
