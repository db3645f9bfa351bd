using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>File operations on cgroup directories, shared by the v1 and v2 drivers.</summary>
internal static class CgroupFs
{
    public static void Write(string file, string value)
    {
        using var fd = Sys.Open(file, Libc.O_WRONLY | Libc.O_TRUNC);
        Sys.WriteAll(fd, System.Text.Encoding.ASCII.GetBytes(value));
    }

    public static string Read(string file) => File.ReadAllText(file).Trim();

    /// <summary>mkdir that tolerates an existing directory; returns whether it created it.</summary>
    public static bool MakeDir(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) return false;
            Directory.CreateDirectory(dir);
            return true;
        }
        catch (IOException e)
        {
            throw new EngineException(FailureKind.Failed, "CgroupFailed", $"cannot mkdir {dir}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Removes a cgroup directory bottom-up. Cgroups of exited processes can stay busy for a
    /// moment while the kernel finishes tearing the tasks down, hence the short retry.
    /// </summary>
    public static void RemoveTree(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var child in Directory.GetDirectories(dir)) RemoveTree(child);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                Directory.Delete(dir);
                return;
            }
            catch (DirectoryNotFoundException)
            {
                return;
            }
            catch (IOException) when (attempt < 100)
            {
                Thread.Sleep(20);
            }
            catch (IOException e)
            {
                throw new EngineException(FailureKind.Failed, "CgroupBusy", $"cannot rmdir {dir}: {e.Message}", e);
            }
        }
    }

    /// <summary>rmdir of a cgroup that may still hold children or processes; false when it is in use.</summary>
    public static bool TryRemoveEmpty(string dir)
    {
        try
        {
            if (Directory.Exists(dir) && Directory.GetDirectories(dir).Length == 0) Directory.Delete(dir);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Hands a cgroup to the container's root so its systemd can manage sub-cgroups (cgroup v2 delegation).</summary>
    public static void Delegate(string dir, int uid, int gid)
    {
        Sys.Chown(dir, uid, gid);
        foreach (var file in new[] { "cgroup.procs", "cgroup.threads", "cgroup.subtree_control" })
        {
            string path = Path.Combine(dir, file);
            if (File.Exists(path)) Sys.Chown(path, uid, gid);
        }
    }

    /// <summary>The (controllers, path) lines of /proc/pid/cgroup; controllers is "" for cgroup v2.</summary>
    public static IEnumerable<(string Controllers, string Path)> ProcCgroups(int pid)
    {
        string file = pid == 0 ? "/proc/self/cgroup" : $"/proc/{pid}/cgroup";
        foreach (var line in File.ReadAllLines(file))
        {
            var parts = line.Split(':', 3);
            if (parts.Length == 3) yield return (parts[1], parts[2]);
        }
    }
}
