using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>Removes a container: its init stopped if forced, its cgroup, run and state directories, its NICs, its name.</summary>
internal sealed class DeleteContainer(EngineParts parts, StopContainer stopper)
{
    public async Task RunAsync(Container c, bool force)
    {
        string name = c.Name;
        var state = c.State;
        if (!state.CanDeleteUnforced())
        {
            if (!force) throw EngineException.Conflict("ContainerRunning", $"container '{name}' is running; stop it first or use -Force");
            await stopper.RunAsync(c, force: true, TimeSpan.Zero);
        }
        // A damaged container may still run processes the daemon does not track.
        CgroupKiller.KillAll(parts.Cgroups.Open(name));
        parts.Cgroups.Remove(name);
        // Before the state directory goes: a volume that cannot be removed leaves the container there to remove again.
        parts.Storage.DeleteVolume(c.Record, parts.Store.DirectoryOf(name));
        string doomed = Path.Combine(parts.Store.ContainersDir, $".delete-{name}-{Guid.NewGuid():N}");
        Directory.Move(parts.Store.DirectoryOf(name), doomed);
        TestHooks.Reach("remove-moved");
        TreeRemover.Remove(parts.RunDirOf(name));
        parts.Networks.Unregister(name);
        parts.Registry.Remove(c);
        // Gone from the store already; what cannot be removed now is reclaimed at the next start.
        try { TreeRemover.Remove(doomed); }
        catch (NativeException e) { EngineLog.Write($"cannot remove {doomed} now: {e.Message}"); }
        TestHooks.Reach("remove-done");
    }
}
