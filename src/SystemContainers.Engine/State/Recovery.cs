namespace SystemContainers.Engine.State;

/// <summary>
/// Reclaims at daemon start what a daemon that died mid-way left staged: directories and files
/// whose names start with a dot in the daemon's own directories (.new-*, .delete-*, .import-*,
/// .remove-*) and the temp files of atomic writes (.state.json.*.tmp and the like). Nothing
/// else refers to them. One that cannot be removed is logged and left; it never stops the start.
/// </summary>
public static class Recovery
{
    /// <summary>Removes every dot entry directly in dir (the staging area of a store).</summary>
    public static void ReclaimStaging(string dir)
    {
        foreach (var entry in Entries(dir).Where(e => e.StartsWith('.'))) TryRemove(dir, entry);
    }

    /// <summary>Removes the temp files of interrupted atomic writes in each directory under root.</summary>
    public static void ReclaimTempFiles(string root)
    {
        foreach (var sub in Entries(root).Where(e => !e.StartsWith('.')))
        {
            string dir = Path.Combine(root, sub);
            if (!Directory.Exists(dir)) continue;
            foreach (var entry in Entries(dir).Where(IsTempFile)) TryRemove(dir, entry);
        }
    }

    /// <summary>Removes directories under root that nothing owns any more (the run directories of removed containers).</summary>
    public static void ReclaimOrphans(string root, IEnumerable<string> owned)
    {
        var keep = owned.ToHashSet(StringComparer.Ordinal);
        foreach (var entry in Entries(root).Where(e => !keep.Contains(e))) TryRemove(root, entry);
    }

    /// <summary>The name WriteFileAtomic gives its temp file: .&lt;file&gt;.&lt;pid&gt;.&lt;thread&gt;.tmp.</summary>
    private static bool IsTempFile(string name) => name.StartsWith('.') && name.EndsWith(".tmp", StringComparison.Ordinal);

    private static List<string> Entries(string dir)
    {
        try
        {
            return Directory.Exists(dir) ? Directory.EnumerateFileSystemEntries(dir).Select(e => Path.GetFileName(e)).ToList() : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            EngineLog.Write($"cannot list {dir} for leftovers: {e.Message}");
            return [];
        }
    }

    private static void TryRemove(string dir, string name)
    {
        try
        {
            TreeRemover.Remove(dir, name);
            EngineLog.Write($"reclaimed leftover {Path.Combine(dir, name)}");
        }
        catch (Exception e) when (e is Interop.NativeException or IOException)
        {
            EngineLog.Write($"cannot reclaim leftover {Path.Combine(dir, name)}: {e.Message}");
        }
    }
}
