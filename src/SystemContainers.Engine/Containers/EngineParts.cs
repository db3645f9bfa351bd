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
    public RootTarget RootTargetOf(string name) => new(Path.Combine(RunDirOf(name), "rootfs"), Path.Combine(RunDirOf(name), "layers"));

    /// <summary>
    /// The container's root as sc-init mounts it: its pool's driver's root mounts at the run
    /// directory's rootfs, with the id map they are idmapped through. A start and a stopped
    /// container's file copy both mount it from here.
    /// </summary>
    public LaunchPlan RootfsOf(ContainerRecord r, bool shifted)
    {
        var at = RootTargetOf(r.Name);
        var plan = new LaunchPlan().AddAll(Storage.RootMountsOf(r, at, shifted)).Add("target", at.Target);
        return r.IdMap is { } m ? plan.Add(m) : plan;
    }

    /// <summary>
    /// The host directory that is the container's whole root, holding the container's own ids (a
    /// dir or btrfs volume mounted idmapped), or null (an overlay). File copies work there
    /// directly: a file host root creates through the idmapped mount has no id in it (EOVERFLOW).
    /// </summary>
    public string? VolumeRootOf(ContainerRecord r)
    {
        var at = RootTargetOf(r.Name);
        return r.IdMap is not null && Storage.RootMountsOf(r, at, shifted: false) is [{ Type: "bind", Idmap: true } only] && only.Target == at.Target
            ? only.Source : null;
    }
}
