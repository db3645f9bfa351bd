using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>Creates a container: its name claimed, an id map chosen, its NICs registered, its files made in staging and moved in place.</summary>
internal sealed class CreateContainer(EngineParts parts, NicDefaults nicDefaults)
{
    public Container Run(string name, string image, IReadOnlyDictionary<string, string>? config, string? storagePool)
    {
        ContainerName.Validate(name);
        var parsed = nicDefaults.Complete(ContainerConfig.Parse(config), firstConfig: true);
        foreach (var disk in parsed.Disks) disk.CheckSource();
        var img = parts.Images.Resolve(image);
        var registry = parts.Registry;
        Container container;
        IdMap? idmap;
        lock (registry.ClaimLock)
        {
            if (registry.Contains(name)) throw Exists(name);
            string pool = parts.Storage.Resolve(storagePool);
            idmap = parsed.IsPrivileged ? null : IdMap.ForConfig(parsed, registry.IsolatedMaps());
            var record = new ContainerRecord(name, img.Fingerprint, img.Aliases.Contains(image) ? image : img.Aliases.FirstOrDefault(),
                parsed.Raw, DateTimeOffset.UtcNow, idmap, img.InitKind, Guid.NewGuid()) { StoragePool = pool };
            container = new Container(record, RuntimeRecord.NeverStarted, parsed);
            // Held until the files exist, so nothing queued on the new container acts on it half-made.
            container.Gate.Wait();
            if (!registry.TryAdd(container)) throw Exists(name);
        }
        try
        {
            using var revert = new Reverter();
            revert.Add($"the claim of name '{name}'", () => registry.Remove(container));
            string staging = Path.Combine(parts.Store.ContainersDir, $".new-{name}-{Guid.NewGuid():N}");
            revert.Add($"staging directory {staging}", () => TreeRemover.Remove(staging));
            Directory.CreateDirectory(staging);
            revert.Add($"the volume of '{name}'", () => parts.Storage.DeleteVolume(container.Record, staging));
            parts.Storage.CreateVolume(container.Record, staging);
            StepTrace.Mark("create: volume made");
            revert.Add($"the NICs of '{name}'", () => parts.Networks.Register(name, []));
            parts.Networks.Register(name, parsed.Nics);
            StepTrace.Mark("create: NICs registered");
            parts.Store.CreateConfig(staging, container.Record);
            StepTrace.Mark("create: config written");
            TestHooks.Reach("create-staged");
            Directory.Move(staging, parts.Store.DirectoryOf(name));
            revert.Success();
        }
        finally
        {
            container.Gate.Release();
        }
        return container;
    }

    private static EngineException Exists(string name) => EngineException.Conflict("ContainerExists", $"container '{name}' already exists");
}
