namespace SystemContainers.Engine.Containers;

/// <summary>Freezes and thaws every process of a running container (cgroup freezer).</summary>
internal sealed class FreezeContainer(EngineParts parts)
{
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
}
