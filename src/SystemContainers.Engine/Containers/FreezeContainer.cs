namespace SystemContainers.Engine.Containers;

/// <summary>Freezes and thaws every process of a running container (cgroup freezer).</summary>
internal sealed class FreezeContainer(EngineParts parts)
{
    /// <summary>
    /// Beside the container's record while the engine holds it frozen for a moment (a snapshot, a
    /// copy, an export): a daemon killed then leaves the cgroup frozen, and the next start, finding
    /// this file, thaws a freeze the user never asked for.
    /// </summary>
    public const string BriefMarker = "frozen-briefly";

    public void Freeze(Container c)
    {
        var (state, live) = c.Snapshot();
        if (live is null || !state.CanFreeze())
            throw state == ContainerState.Frozen ? EngineException.Conflict("AlreadyFrozen", $"container '{c.Name}' is already frozen") : c.NotRunning();
        parts.Cgroups.SetFrozen(live.Cgroup, true);
        live.Frozen = true;
    }

    public void Thaw(Container c)
    {
        var (state, live) = c.Snapshot();
        if (live is null || !state.CanThaw())
            throw state == ContainerState.Running ? EngineException.Conflict("NotFrozen", $"container '{c.Name}' is not frozen") : c.NotRunning();
        Thaw(live);
    }

    public void Thaw(LiveInit live)
    {
        parts.Cgroups.SetFrozen(live.Cgroup, false);
        live.Frozen = false;
    }

    /// <summary>Runs step with a running, unfrozen container frozen (marked, see BriefMarker) and thaws it after; any other container as it is.</summary>
    public void Briefly(Container c, Action step)
    {
        var held = Hold(c);
        try { step(); }
        finally { Release(c, held); }
    }

    public async Task BrieflyAsync(Container c, Func<Task> step)
    {
        var held = Hold(c);
        try { await step(); }
        finally { Release(c, held); }
    }

    private LiveInit? Hold(Container c)
    {
        var (_, live) = c.Snapshot();
        if (live is null || live.Frozen) return null;
        File.WriteAllBytes(MarkerOf(c.Name), []);
        try
        {
            Freeze(c);
        }
        catch
        {
            // Left, it would let the next daemon start thaw a freeze the user makes later.
            File.Delete(MarkerOf(c.Name));
            throw;
        }
        return live;
    }

    private void Release(Container c, LiveInit? held)
    {
        if (held is null) return;
        Thaw(held);
        File.Delete(MarkerOf(c.Name));
    }

    private string MarkerOf(string name) => Path.Combine(parts.Store.DirectoryOf(name), BriefMarker);
}
