using SystemContainers.Engine.Stats;
using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;

namespace SystemContainers.Engine.Containers;

/// <summary>A running init and everything the daemon holds for it; disposed when it exits.</summary>
internal sealed class LiveInit(int pid, SafeFd pidfd, ContainerCgroup cgroup, ConsoleLog? console) : IDisposable
{
    public string? CpuSet;
    /// <summary>The host ends of the container's veth pairs, removed when it stops (locked: hot-plug changes it).</summary>
    public List<HostInterface> HostInterfaces = [];
    public bool Frozen;
    /// <summary>The CPU counter at the previous stats sample, which the next sample's rate is over.</summary>
    public CpuSample LastSample;
    public int Pid { get; } = pid;
    public SafeFd Pidfd { get; } = pidfd;
    public ContainerCgroup Cgroup { get; } = cgroup;
    public ConsoleLog? Console { get; } = console;
    public TaskCompletionSource Exited { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Dispose()
    {
        Console?.Dispose();
        Pidfd.Dispose();
    }
}
