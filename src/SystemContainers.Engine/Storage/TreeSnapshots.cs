using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A container's snapshots as tree copies (TreeCopy: reflinked where the file system shares
/// extents) in one directory only root can enter, for the drivers without snapshots of their
/// own (dir: the volume; overlay: the upper layer). They are never mounted, so nothing writes to
/// them. Each is &lt;dir&gt;/&lt;name&gt;/tree; the &lt;name&gt; directory's mtime, set when it
/// is made and changed by nothing after, is when the snapshot was taken (a copy keeps the
/// volume's own times, and birth times are not on every file system). Every change is one rename: a snapshot is filled under a dot name and renamed in place,
/// removed by renaming it to a dot name first, and a restore swaps a full copy with the volume in
/// one renameat2(RENAME_EXCHANGE); a crash leaves only dot names, which the next snapshot or
/// restore removes and the listing never shows.
/// </summary>
internal sealed class TreeSnapshots(string dir, string container)
{
    private const string Tree = "tree";

    public void Create(string volume, string snapshot) => Fill(snapshot, tree => TreeCopy.Copy(volume, tree));

    /// <summary>
    /// A new snapshot whose tree fill writes (fill makes the tree directory): a copy of the volume,
    /// or a stream received; it is made under a dot name and renamed in place, so a failed fill leaves nothing listed.
    /// </summary>
    public void Fill(string snapshot, Action<string> fill)
    {
        string path = Path.Combine(dir, snapshot);
        if (Directory.Exists(path))
            throw EngineException.Conflict("SnapshotExists", $"container '{container}' already has a snapshot '{snapshot}'");
        PoolDirs.Make(dir);
        foreach (var leftover in Directory.EnumerateDirectories(dir, ".*")) TreeRemover.Remove(leftover);
        string filling = Path.Combine(dir, $".{snapshot}.tmp");
        PoolDirs.Make(filling);
        try
        {
            fill(Path.Combine(filling, Tree));
        }
        catch
        {
            TreeRemover.Remove(filling);
            throw;
        }
        Directory.SetLastWriteTimeUtc(filling, DateTime.UtcNow);
        TestHooks.Reach("snapshot-filled");
        Directory.Move(filling, path);
    }

    /// <summary>Makes volume what the snapshot holds; the snapshot stays.</summary>
    public void Restore(string snapshot, string volume)
    {
        string source = TreeOf(snapshot);
        string parent = Path.GetDirectoryName(volume)!, name = Path.GetFileName(volume);
        string restoring = $".{name}.restoring";
        TreeRemover.Remove(parent, restoring);
        TreeCopy.Copy(source, Path.Combine(parent, restoring));
        using (var fd = Sys.Open(parent, At.DirFlags))
            if (At.renameat2(fd.Fd, restoring, fd.Fd, name, At.RENAME_EXCHANGE) < 0)
                throw NativeException.FromLastError($"exchange {Path.Combine(parent, restoring)} with", volume);
        TreeRemover.Remove(parent, restoring);
    }

    public void Delete(string snapshot)
    {
        string path = EntryOf(snapshot);
        string deleting = Path.Combine(dir, $".{snapshot}.deleting");
        TreeRemover.Remove(deleting);
        Directory.Move(path, deleting);
        TreeRemover.Remove(deleting);
    }

    public void Rename(string snapshot, string newName)
    {
        string from = EntryOf(snapshot);
        string to = Path.Combine(dir, newName);
        if (Directory.Exists(to))
            throw EngineException.Conflict("SnapshotExists", $"container '{container}' already has a snapshot '{newName}'");
        Directory.Move(from, to);
    }

    public IReadOnlyList<SnapshotInfo> List()
    {
        if (!Directory.Exists(dir)) return [];
        return [.. new DirectoryInfo(dir).EnumerateDirectories().Where(d => !d.Name.StartsWith('.'))
            .Select(d => new SnapshotInfo(d.Name, d.LastWriteTimeUtc)).OrderBy(s => s.Created)];
    }

    /// <summary>The snapshot's copy of the volume.</summary>
    public string TreeOf(string snapshot) => Path.Combine(EntryOf(snapshot), Tree);

    private string EntryOf(string snapshot)
    {
        string path = Path.Combine(dir, snapshot);
        return Directory.Exists(path) ? path
            : throw EngineException.NotFound("SnapshotNotFound", $"container '{container}' has no snapshot '{snapshot}'");
    }

    /// <summary>Removes every snapshot with the directory that holds them.</summary>
    public void DeleteAll()
    {
        if (Directory.Exists(dir)) TreeRemover.Remove(dir);
    }

    /// <summary>Moves the snapshots to another directory (the container's new name), unless only the new one is there already.</summary>
    public void MoveTo(string newDir) => PoolDirs.Rename(dir, newDir);
}
