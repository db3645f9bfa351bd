using System.Text.RegularExpressions;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Snapshots of a container's volume, through its pool's driver: a running container is frozen
/// while its snapshot is taken, so the snapshot holds one moment of all its processes' writes; a
/// restore needs the container stopped.
/// </summary>
internal sealed partial class SnapshotContainer(EngineParts parts, FreezeContainer freezer)
{
    [GeneratedRegex("^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})\\z")]
    private static partial Regex NamePattern();

    public SnapshotInfo Create(Container c, string? snapshot)
    {
        var driver = parts.Storage.DriverOf(c.Record);
        var volume = parts.Storage.VolumeOf(c.Record);
        string name = snapshot is { Length: > 0 } ? Validate(snapshot) : NextName(driver.Snapshots(volume));
        var (_, live) = c.Snapshot();
        bool freeze = live is { Frozen: false };
        if (freeze) freezer.Freeze(c);
        try
        {
            driver.CreateSnapshot(volume, name);
        }
        finally
        {
            if (freeze) freezer.Thaw(live!);
        }
        return driver.Snapshots(volume).First(s => s.Name == name);
    }

    public void Restore(Container c, string snapshot)
    {
        if (c.Live is not null)
            throw EngineException.Conflict("ContainerRunning", $"container '{c.Name}' is running; stop it before restoring snapshot '{snapshot}'");
        parts.Storage.DriverOf(c.Record).RestoreSnapshot(parts.Storage.VolumeOf(c.Record), Validate(snapshot));
    }

    public void Delete(Container c, string snapshot) =>
        parts.Storage.DriverOf(c.Record).DeleteSnapshot(parts.Storage.VolumeOf(c.Record), Validate(snapshot));

    public SnapshotInfo Rename(Container c, string snapshot, string newName)
    {
        var driver = parts.Storage.DriverOf(c.Record);
        var volume = parts.Storage.VolumeOf(c.Record);
        driver.RenameSnapshot(volume, Validate(snapshot), Validate(newName));
        return driver.Snapshots(volume).First(s => s.Name == newName);
    }

    public IReadOnlyList<SnapshotInfo> List(Container c) =>
        parts.Storage.DriverOf(c.Record).Snapshots(parts.Storage.VolumeOf(c.Record));

    internal static string Validate(string name) => NamePattern().IsMatch(name) ? name
        : throw EngineException.Invalid("InvalidSnapshotName",
            $"snapshot name '{Spec.DisplayText.Escape(name)}' is invalid: use 1 to 63 letters, digits, '-' and '_', starting with a letter or digit");

    /// <summary>snap0, snap1, ...: the first such name not taken, as LXD names them.</summary>
    private static string NextName(IReadOnlyList<SnapshotInfo> taken)
    {
        for (int i = 0; ; i++)
            if (taken.All(s => s.Name != $"snap{i}")) return $"snap{i}";
    }
}
