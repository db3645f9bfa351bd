using System.Diagnostics;
using SystemContainers.Engine.Cgroups;

namespace SystemContainers.Engine.Tests;

/// <summary>
/// The cgroup2 device program, attached for real to a cgroup2 directory the test makes (on a
/// hybrid host the controller-less unified tree, which BPF device programs attach to all the same).
/// </summary>
public class DeviceBpfProgramTests
{
    private static string? Cgroup2Mount() =>
        File.ReadLines("/proc/self/mounts").Select(l => l.Split(' ')).Where(f => f.Length > 2 && f[2] == "cgroup2").Select(f => f[1]).FirstOrDefault();

    /// <summary>Runs script in a shell that first moves itself into cgroupDir (or stays where it is).</summary>
    private static string RunIn(string? cgroupDir, string script)
    {
        string join = cgroupDir is null ? "" : $"echo $$ > {cgroupDir}/cgroup.procs || exit 99; ";
        var p = Process.Start(new ProcessStartInfo("sh", ["-c", join + script]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return output;
    }

    [Fact]
    public void RefusesOpenAndMknodOfDevicesOutsideTheAllowList()
    {
        string mount = Cgroup2Mount() ?? throw new InvalidOperationException("this host has no cgroup2 mount");
        string dir = Path.Combine(mount, $"sc-devtest-{Guid.NewGuid():N}");
        using var tmp = new TempDir();
        string node = tmp.Combine("kmsg");
        const string probe = "(exec 3</dev/null) && echo null; (exec 3</dev/kmsg) 2>/dev/null && echo kmsg; " +
                             "(exec 3</dev/urandom) && echo urandom; mknod {0} c 1 11 2>/dev/null && echo mknod; true";
        Assert.Equal("null\nkmsg\nurandom\nmknod\n", RunIn(null, string.Format(probe, node)));
        File.Delete(node);
        Directory.CreateDirectory(dir);
        try
        {
            DeviceBpfProgram.Standard.AttachTo(dir);
            Assert.Equal("null\nurandom\n", RunIn(dir, string.Format(probe, node)));
            Assert.False(File.Exists(node));
        }
        finally
        {
            Directory.Delete(dir);
        }
    }

    [Fact]
    public void AttachingToAPathThatIsNoCgroupNamesIt()
    {
        using var tmp = new TempDir();
        using var program = DeviceBpfProgram.Load(DevicePolicy.Allowed);
        var e = Assert.Throws<Interop.NativeException>(() => program.AttachTo(tmp.Path));
        Assert.Contains(tmp.Path, e.Message);
    }
}
