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
        using var staged = StagedContainer.Claim(parts, name, parsed, idmap => new ContainerRecord(name, img.Fingerprint,
            img.Aliases.Contains(image) ? image : img.Aliases.FirstOrDefault(), parsed.Raw, DateTimeOffset.UtcNow, idmap, img.InitKind, Guid.NewGuid())
        { StoragePool = parts.Storage.Resolve(storagePool) });
        parts.Storage.CreateVolume(staged.Container.Record, staged.Dir);
        StepTrace.Mark("create: volume made");
        return staged.Commit("create-staged");
    }
}
