using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Containers;

/// <summary>The services the container verbs share; ContainerService owns and disposes them.</summary>
internal sealed record EngineParts(
    EngineOptions Options,
    StateStore Store,
    ImageStore Images,
    ICgroupDriver Cgroups,
    ScInit ScInit,
    EventLoop Loop,
    NetworkManager Networks,
    StorageService Storage,
    Lxcfs Lxcfs,
    ContainerRegistry Registry,
    CpuAllocator Cpus,
    Action<string, string> Raise)
{
    public string RunDirOf(string name) => Store.RunDirectoryOf(name);
    public string ConsoleLogOf(string name) => Path.Combine(RunDirOf(name), "console.log");

    /// <summary>
    /// The container's root as sc-init mounts it: its pool's driver's root mounts at the run
    /// directory's rootfs, with the id map they are idmapped through. A start and a stopped
    /// container's file copy both mount it from here.
    /// </summary>
    public LaunchPlan RootfsOf(ContainerRecord r, bool shifted) => RootfsOf(r, Storage.VolumeOf(r), shifted);

    /// <summary>The same of a volume not yet in place (a new container's, in its staging directory).</summary>
    public LaunchPlan RootfsOf(ContainerRecord r, Volume volume, bool shifted)
    {
        var at = new RootTarget(Path.Combine(RunDirOf(r.Name), "rootfs"), Path.Combine(RunDirOf(r.Name), "layers"));
        var plan = new LaunchPlan().AddAll(Storage.RootMountsOf(r, volume, at, shifted)).Add("target", at.Target);
        return r.IdMap is { } m ? plan.Add(m) : plan;
    }
}
