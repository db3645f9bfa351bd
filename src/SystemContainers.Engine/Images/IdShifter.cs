using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Images;

/// <summary>
/// The fallback where idmapped mounts are unavailable: a copy of the image whose owners are
/// shifted into the container's id range, made once per image and range and then shared.
/// </summary>
public static unsafe class IdShifter
{
    public static string EnsureShifted(string rootfs, IdMap map)
    {
        string target = $"{rootfs}.shift-{map.UidBase}-{map.GidBase}";
        if (Directory.Exists(target)) return target;
        // A dot name ending .tmp: a copy cut short by a crash is reclaimed at the next daemon start.
        string staging = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.tmp");
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        var cp = System.Diagnostics.Process.Start("cp", ["-a", "--reflink=auto", rootfs, staging])!;
        cp.WaitForExit();
        if (cp.ExitCode != 0) throw new EngineException(FailureKind.Failed, "ShiftFailed", $"cannot copy {rootfs} to {staging}: cp exit {cp.ExitCode}");
        Shift(staging, map);
        Directory.Move(staging, target);
        return target;
    }

    /// <summary>Adds the range base to every owner. chown clears setuid/setgid bits, so each mode is restored after it.</summary>
    private static void Shift(string dir, IdMap map)
    {
        ShiftOne(dir, map);
        foreach (var entry in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", new EnumerationOptions
        {
            RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false,
        }))
            ShiftOne(entry.FullName, map);
    }

    private static void ShiftOne(string path, IdMap map)
    {
        Tmds.Linux.stat st;
        byte[] utf8 = System.Text.Encoding.UTF8.GetBytes(path + "\0");
        fixed (byte* p = utf8)
            if (Tmds.Linux.LibC.lstat(p, &st) < 0) throw new NativeException(Tmds.Linux.LibC.errno, "lstat", path);
        long uid = st.st_uid, gid = st.st_gid;
        if (uid >= map.Size || gid >= map.Size)
            throw new EngineException(FailureKind.Failed, "ShiftFailed", $"cannot shift {path}: owner {uid}:{gid} is outside the {map.Size}-id range");
        Sys.Chown(path, (int)(map.UidBase + uid), (int)(map.GidBase + gid));
        if ((st.st_mode & 0xf000) != 0xa000 && Libc.chmod(path, (int)(st.st_mode & 0xfff)) < 0)
            throw NativeException.FromLastError("chmod", path);
    }
}
