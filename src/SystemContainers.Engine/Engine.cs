using SystemContainers.Engine.Cgroups;
using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Network;

namespace SystemContainers.Engine;

/// <summary>
/// The composition root: every engine service built from EngineOptions, in the order they
/// depend on each other, and disposed in the reverse order.
/// </summary>
public sealed class Engine : IDisposable
{
    /// <summary>The running containers' proxy devices, kept listening as the containers come and go.</summary>
    private readonly ProxyDevices _proxies;

    /// <summary>Makes the containers' scheduled snapshots and deletes expired ones.</summary>
    private readonly SnapshotScheduler _snapshots;

    private Engine(ImageStore images, ContainerService containers, ProxyDevices proxies, SnapshotScheduler snapshots)
    {
        Images = images;
        Containers = containers;
        _proxies = proxies;
        _snapshots = snapshots;
    }

    public ImageStore Images { get; }
    public ContainerService Containers { get; }

    /// <summary>Opens the engine over its state: running containers are adopted, the networks' services started.</summary>
    public static Engine Open(EngineOptions options, Action<string> log)
    {
        var images = new ImageStore(options.StateDir, options.ImportLimits);
        var cgroups = CgroupDriverFactory.Detect(options.CgroupGroup);
        var containers = new ContainerService(options, images, cgroups);
        try
        {
            var proxies = new ProxyDevices(containers, log);
            var snapshots = new SnapshotScheduler(containers, TimeProvider.System, TimeZoneInfo.Local);
            var engine = new Engine(images, containers, proxies, snapshots);
            snapshots.Start();
            return engine;
        }
        catch
        {
            containers.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        _snapshots.Dispose();
        _proxies.Dispose();
        Containers.Dispose();
    }
}
