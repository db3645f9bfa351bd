using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Images;

/// <summary>
/// The fallback where idmapped mounts are unavailable: a copy of the image whose owners are
/// shifted into the container's id range, made once per image and range and then shared.
/// </summary>
public static class IdShifter
{
    public static string EnsureShifted(string rootfs, IdMap map)
    {
        string target = $"{rootfs}.shift-{map.UidBase}-{map.GidBase}";
        if (Directory.Exists(target)) return target;
        // A dot name ending .tmp: a copy cut short by a crash is reclaimed at the next daemon start.
        string staging = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.tmp");
        TreeRemover.Remove(staging);
        try
        {
            Storage.TreeCopy.Copy(rootfs, staging);
        }
        catch (EngineException e)
        {
            throw new EngineException(FailureKind.Failed, "ShiftFailed", e.Message, e);
        }
        try
        {
            Shift(staging, null, map);
        }
        catch (NativeException e)
        {
            TreeRemover.Remove(staging);
            throw new EngineException(FailureKind.Failed, "ShiftFailed", $"cannot shift the owners of {staging}: {e.Message}");
        }
        Directory.Move(staging, target);
        return target;
    }

    /// <summary>
    /// Moves every owner of a tree from one id map's range into another's (from null: owners are
    /// the container's own ids), in place: a layer copied from one container to another. Its
    /// whiteouts stay as overlay made them.
    /// </summary>
    internal static void Reshift(string dir, IdMap? from, IdMap to)
    {
        try
        {
            Shift(dir, from, to);
        }
        catch (NativeException e)
        {
            throw new EngineException(FailureKind.Failed, "ShiftFailed", $"cannot shift the owners of {dir}: {e.Message}");
        }
    }

    /// <summary>
    /// Adds the range base to every owner (less from's base), relative to directory fds one name at
    /// a time (an image may hold paths beyond PATH_MAX) and never through a symlink. chown clears setuid/setgid
    /// bits, so each mode is restored after it.
    /// </summary>
    private static void Shift(string dir, IdMap? from, IdMap map)
    {
        using var root = Sys.Open(dir, At.DirFlags);
        ShiftOne(root.Fd, "", from, map, dir);
        var streams = new Stack<nint>();
        try
        {
            Push(At.openat(root.Fd, ".", At.DirFlags), dir);
            while (streams.Count > 0)
            {
                string? name = At.NextEntry(streams.Peek(), out _);
                if (name is null)
                {
                    At.closedir(streams.Pop());
                    continue;
                }
                int parent = At.dirfd(streams.Peek());
                if (ShiftOne(parent, name, from, map, name).IsDirectory)
                {
                    if (streams.Count >= RootfsExtractor.MaxDepth)
                        throw new NativeException(Libc.EINVAL, $"descend more than {RootfsExtractor.MaxDepth} directories into", dir);
                    Push(At.openat(parent, name, At.DirFlags), name);
                }
            }
        }
        finally
        {
            while (streams.Count > 0) At.closedir(streams.Pop());
        }

        void Push(int fd, string where)
        {
            if (fd < 0) throw NativeException.FromLastError("open", where);
            nint stream = At.fdopendir(fd);
            if (stream == 0)
            {
                Libc.close(fd);
                throw NativeException.FromLastError("opendir", where);
            }
            streams.Push(stream);
        }
    }

    private static FileIdentity ShiftOne(int parent, string name, IdMap? from, IdMap map, string where)
    {
        var id = At.Stat(parent, name, where);
        // An overlay whiteout (a 0:0 character device) is the kernel's, owned by host root whoever made it: no one's ids to move.
        if (from is not null && id.Type == At.S_IFCHR && id.RdevMajor == 0 && id.RdevMinor == 0) return id;
        long uid = id.Uid - (from?.UidBase ?? 0), gid = id.Gid - (from?.GidBase ?? 0);
        if (uid < 0 || gid < 0 || uid >= map.Size || gid >= map.Size)
            throw new EngineException(FailureKind.Failed, "ShiftFailed", $"cannot shift {where}: owner {id.Uid}:{id.Gid} is outside the {map.Size}-id range");
        int flags = At.AT_SYMLINK_NOFOLLOW | (name.Length == 0 ? At.AT_EMPTY_PATH : 0);
        if (At.fchownat(parent, name, (int)(map.UidBase + uid), (int)(map.GidBase + gid), flags) < 0)
            throw NativeException.FromLastError("chown", where);
        if (id.Type != At.S_IFLNK && (name.Length == 0 ? At.fchmod(parent, (int)(id.Mode & 0xfff)) : At.fchmodat(parent, name, (int)(id.Mode & 0xfff), 0)) < 0)
            throw NativeException.FromLastError("chmod", where);
        return id;
    }
}
