using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Network;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

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
}
