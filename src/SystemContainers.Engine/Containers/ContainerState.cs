namespace SystemContainers.Engine.Containers;

/// <summary>
/// What a container is doing, as the verbs see it. Stopping lasts while a stop waits for the init
/// to exit, so a verb that does not take the container's gate (exec) can tell it apart from running.
/// </summary>
public enum ContainerState { Stopped, Running, Frozen, Stopping, Damaged }

/// <summary>Which verbs each state allows; every verb asks here before it acts.</summary>
public static class ContainerStateGuards
{
    public static bool CanStart(this ContainerState s) => s == ContainerState.Stopped;
    public static bool CanStop(this ContainerState s) => s is ContainerState.Running or ContainerState.Frozen;
    public static bool CanFreeze(this ContainerState s) => s == ContainerState.Running;
    public static bool CanThaw(this ContainerState s) => s == ContainerState.Frozen;
    public static bool CanExec(this ContainerState s) => s == ContainerState.Running;
    public static bool CanUpdate(this ContainerState s) => s != ContainerState.Damaged;

    /// <summary>Whether a delete without force may go ahead: a running init is stopped only when asked to.</summary>
    public static bool CanDeleteUnforced(this ContainerState s) => s is ContainerState.Stopped or ContainerState.Damaged;
}
