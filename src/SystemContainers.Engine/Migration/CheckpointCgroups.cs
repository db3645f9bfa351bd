using System.Text.Json;
using SystemContainers.Engine.Cgroups;

namespace SystemContainers.Engine.Migration;

/// <summary>
/// The container's own cgroup2 tree (what its systemd made below the delegated directory), kept
/// with a dump and made again before the restore. criu's cgroup image holds only the cgroups that
/// have tasks, and systemd watches cgroup.events of empty ones too (user.slice, a stopped unit's
/// slice): its restored inotify watches need those files to exist (research notes, 1.2 #6).
/// </summary>
public static class CheckpointCgroups
{
    private const string FileName = "cgroups.json";

    /// <summary>Saves the directories below unified (relative, parents first) in imagesDir.</summary>
    public static void Save(string? unified, string imagesDir)
    {
        var below = unified is null || !Directory.Exists(unified) ? [] : Directory
            .EnumerateDirectories(unified, "*", SearchOption.AllDirectories)
            .Select(d => Path.GetRelativePath(unified, d)).OrderBy(d => d.Count(ch => ch == '/')).ThenBy(d => d, StringComparer.Ordinal).ToList();
        File.WriteAllText(Path.Combine(imagesDir, FileName), JsonSerializer.Serialize(below));
    }

    /// <summary>Makes the saved directories below unified, delegated to the container's root as its systemd had them.</summary>
    public static void Recreate(string imagesDir, string? unified, int rootUid, int rootGid)
    {
        string file = Path.Combine(imagesDir, FileName);
        if (unified is null || !File.Exists(file)) return;
        foreach (string relative in JsonSerializer.Deserialize<List<string>>(File.ReadAllText(file)) ?? [])
        {
            if (Path.IsPathRooted(relative) || relative.Split('/').Any(p => p is "" or "." or ".."))
                throw new EngineException(FailureKind.Failed, "RestoreFailed", $"{file} names a cgroup outside the container's: '{relative}'");
            string dir = Path.Combine(unified, relative);
            if (CgroupFs.MakeDir(dir)) CgroupFs.Delegate(dir, rootUid, rootGid);
        }
    }
}
