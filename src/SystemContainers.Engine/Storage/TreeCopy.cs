using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A full copy of a tree with owners, modes, links and xattrs kept, sharing extents (FICLONE)
/// where the file system can and copying bytes where it cannot: cp -a --reflink=auto.
/// </summary>
public static class TreeCopy
{
    /// <summary>Copies source into target, which must not exist; on failure target is removed.</summary>
    public static void Copy(string source, string target)
    {
        var (code, error) = Sys.Run("/usr/bin/cp", ["cp", "-a", "--reflink=auto", "--", source, target], "");
        if (code == 0) return;
        TreeRemover.Remove(target);
        throw new EngineException(FailureKind.Failed, "CopyFailed", $"cannot copy {source} to {target}: cp exit {code}: {error}");
    }

    /// <summary>Copies the entries of source into target, an existing empty directory (a btrfs subvolume).</summary>
    public static void CopyInto(string source, string target)
    {
        var (code, error) = Sys.Run("/usr/bin/cp", ["cp", "-a", "--reflink=auto", "-T", "--", source, target], "");
        if (code != 0)
            throw new EngineException(FailureKind.Failed, "CopyFailed", $"cannot copy {source} into {target}: cp exit {code}: {error}");
    }
}
