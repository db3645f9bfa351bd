using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Interop;

/// <summary>The daemon's mount points as /proc/self/mountinfo lists them (fifth field, with the kernel's octal escapes).</summary>
internal static partial class MountInfo
{
    public static bool IsMountPoint(string dir) => MountPoints().Contains(dir);

    private static IEnumerable<string> MountPoints() =>
        File.ReadLines("/proc/self/mountinfo").Select(l => l.Split(' ')).Where(f => f.Length > 4)
            .Select(f => Escaped().Replace(f[4], m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString()));

    [GeneratedRegex("\\\\([0-7]{3})")]
    private static partial Regex Escaped();
}
