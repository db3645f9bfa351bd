using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// Hot-plug of disk devices: what a config change adds, removes or changes in a running
/// container is unmounted and mounted there by "sc-init disk", before the config is saved.
/// </summary>
public static class DiskPlug
{
    /// <summary>
    /// Makes the running container's disks match after. locked: the container's mounts are locked
    /// at start (two user namespaces); a disk mounted later is not, so its root could remount a
    /// read-only one writable, and such a disk is refused until the next start.
    /// </summary>
    public static void Change(ScInit scInit, SafeFd initPidfd, IdMap? idmap, bool locked, string container, ContainerConfig before, ContainerConfig after)
    {
        var removed = before.Disks.Except(after.Disks).ToList();
        var added = after.Disks.Except(before.Disks).ToList();
        if (removed.Count == 0 && added.Count == 0) return;
        if (locked && added.FirstOrDefault(d => d.ReadOnly) is { } readOnly)
            throw EngineException.Conflict("DiskNeedsRestart",
                $"cannot add the read-only disk '{readOnly.Device}' to running container '{container}': only a disk mounted at start is locked read-only; stop the container first, or add it writable");
        try
        {
            scInit.ChangeDisks(PlanFor(idmap, removed, added), initPidfd);
        }
        catch (ScInitException e)
        {
            // Put back what was there; what sc-init mounted of the new ones comes off again.
            try { scInit.ChangeDisks(PlanFor(idmap, added, removed), initPidfd); }
            catch (ScInitException again) { EngineLog.Write($"container '{container}': cannot put its disks back: {again.Message}"); }
            throw new EngineException(FailureKind.Failed, "HotplugFailed", $"cannot change the disks of running container '{container}': {e.Message}", e);
        }
    }

    private static LaunchPlan PlanFor(IdMap? idmap, IEnumerable<DiskSpec> unmount, IEnumerable<DiskSpec> mount)
    {
        // Inner paths come off before the disks they lie in and go on after them.
        var plan = new LaunchPlan().Add("userns", idmap is null ? 0 : 1)
            .AddAll("undisk", unmount.Select(d => d.Path).OrderDescending(StringComparer.Ordinal));
        if (idmap is not null) plan.Add(idmap);
        foreach (var disk in mount.OrderBy(d => d.Path, StringComparer.Ordinal)) plan.Add(disk);
        return plan;
    }
}
