using SystemContainers.Engine.Images;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Makes a stopped container, or one of its snapshots, an image (LXD's publish): its driver's tar
/// stream of the root, with the container's own ids, written and imported into the image store under the
/// alias, launchable like any image. Runs under the container's gate, so it is not started or
/// changed meanwhile; a running container's snapshot can be published.
/// </summary>
internal sealed class PublishContainer(EngineParts parts)
{
    public Task<ImageRecord> RunAsync(Container c, string? snapshot, string alias, string? description, IProgress<string>? progress, CancellationToken ct)
    {
        if (snapshot is null && c.Live is not null)
            throw EngineException.Conflict("ContainerRunning", $"container '{c.Name}' is running; stop it before publishing it, or publish one of its snapshots");
        if (snapshot is not null) SnapshotContainer.CheckExists(parts.Storage, c, snapshot);
        var record = c.Record;
        string what = snapshot is null ? $"container {c.Name}" : $"snapshot {snapshot} of container {c.Name}";
        return parts.Images.PublishAsync((scratch, token) => parts.Storage.WriteRootTarballAsync(record, snapshot, scratch, token), alias,
            description ?? $"published from {what}", progress, ct);
    }
}
