using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.State;
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
    Lxcfs Lxcfs,
    ContainerRegistry Registry,
    CpuAllocator Cpus,
    Action<string, string> Raise)
{
    public string RunDirOf(string name) => Store.RunDirectoryOf(name);
    public string ConsoleLogOf(string name) => Path.Combine(RunDirOf(name), "console.log");
    public string UpperOf(string name) => Path.Combine(Store.DirectoryOf(name), "fs", "upper");

    /// <summary>
    /// The mounts of a container's rootfs as sc-init takes them: its overlay upper over the image,
    /// idmapped unless the ids are shifted on disk. A start and a stopped container's file copy
    /// both mount it from here.
    /// </summary>
    public LaunchPlan RootfsOf(ContainerRecord r, bool shifted)
    {
        string lower = Images.RootfsOf(r.ImageFingerprint);
        if (shifted) lower = IdShifter.EnsureShifted(lower, r.IdMap!);
        var plan = new LaunchPlan()
            .Add("lower", lower)
            .Add("upper", Path.Combine(Store.DirectoryOf(r.Name), "fs"))
            .Add("layers", Path.Combine(RunDirOf(r.Name), "layers"))
            .Add("idmap", r.IdMap is not null && !shifted ? 1 : 0);
        return r.IdMap is { } m ? plan.Add(m) : plan;
    }
}
