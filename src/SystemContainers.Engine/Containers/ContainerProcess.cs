using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Containers;

/// <summary>What every process started in a container gets, its init and every exec alike.</summary>
internal static class ContainerProcess
{
    // Capabilities no container gets: kernel modules, the clock, raw I/O, MAC policy.
    private static readonly int[] DroppedCapabilities = [16, 25, 17, 32, 33];

    public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>The capability drops and the config's syscall allow list.</summary>
    public static LaunchPlan Confine(this LaunchPlan plan, ContainerConfig config) =>
        plan.AddAll("capdrop", DroppedCapabilities.Select(x => x.ToString()))
            .AddAll("sysallow", config.SyscallsAllowed);
}
