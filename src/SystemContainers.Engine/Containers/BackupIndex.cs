using System.Text.Json;
using System.Text.Json.Serialization;

namespace SystemContainers.Engine.Containers;

/// <summary>The container as a backup describes it (index.yaml's config.container).</summary>
public sealed record BackupContainer(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("config")] IReadOnlyDictionary<string, string> Config,
    [property: JsonPropertyName("created_at")] DateTimeOffset Created,
    [property: JsonPropertyName("image_fingerprint")] string ImageFingerprint,
    [property: JsonPropertyName("image_alias")] string? ImageAlias,
    [property: JsonPropertyName("init_kind")] string InitKind);

public sealed record BackupSnapshot(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("created_at")] DateTimeOffset Created,
    [property: JsonPropertyName("expires_at")] DateTimeOffset? ExpiresAt = null);

public sealed record BackupConfig(
    [property: JsonPropertyName("container")] BackupContainer Container,
    [property: JsonPropertyName("snapshots")] IReadOnlyList<BackupSnapshot> Snapshots);

/// <summary>
/// backup/index.yaml of Incus' backup layout: name, backend (driver), pool, optimized, the
/// snapshots oldest first, and the config to make the container from. It is written as JSON,
/// which is YAML too, so it is read back with a strict JSON parser and no YAML one is needed.
/// </summary>
public sealed record BackupIndex(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("backend")] string Backend,
    [property: JsonPropertyName("pool")] string Pool,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("optimized")] bool Optimized,
    [property: JsonPropertyName("optimized_header")] bool OptimizedHeader,
    [property: JsonPropertyName("snapshots")] IReadOnlyList<string> Snapshots,
    [property: JsonPropertyName("config")] BackupConfig Config)
{
    public const string Member = "backup/index.yaml";
    public const string ContainerTree = "backup/container/rootfs/", ContainerStream = "backup/container.bin";
    public const string SnapshotsDir = "backup/snapshots/";

    /// <summary>
    /// A live move's btrfs stream of the running volume, sent before the freeze (the container's
    /// stream is then incremental from it), and the empty member that ends it.
    /// </summary>
    public const string PresyncStream = "backup/container.presync.bin", PresyncEnd = "backup/container.presync.end";

    /// <summary>The index is read whole: a larger one is not an index.</summary>
    public const int MaxBytes = 1 << 20;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    public static string TreeOf(string snapshot) => $"{SnapshotsDir}{snapshot}/rootfs/";
    public static string StreamOf(string snapshot) => $"{SnapshotsDir}{snapshot}.bin";

    /// <summary>
    /// An optimized backup's btrfs stream is in members of this size, STREAM.000000, STREAM.000001, ...
    /// (ChunkOf), the last shorter; exports before chunking have it whole, as the one member STREAM.
    /// </summary>
    public const int ChunkBytes = 8 << 20;

    public static string ChunkOf(string stream, int index) => $"{stream}.{index:D6}";

    public byte[] ToBytes() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>Parses and checks an index; what is wrong with it is an InvalidDataException saying what.</summary>
    public static BackupIndex Parse(byte[] data)
    {
        BackupIndex? index;
        try
        {
            index = JsonSerializer.Deserialize<BackupIndex>(data, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{Member} is not a valid index: {e.Message}");
        }
        if (index is null) throw new InvalidDataException($"{Member} is empty");
        if (index.Type != "container") throw new InvalidDataException($"{Member} describes a '{Spec.DisplayText.Escape(index.Type)}', not a container");
        if (index.Backend is not ("dir" or "btrfs" or "overlay"))
            throw new InvalidDataException($"{Member} names backend '{Spec.DisplayText.Escape(index.Backend)}', which is not dir, btrfs or overlay");
        if (index.Optimized && index.Backend != "btrfs") throw new InvalidDataException($"{Member} is optimized for backend '{index.Backend}': only btrfs ones are");
        if (!index.Snapshots.SequenceEqual(index.Config.Snapshots.Select(s => s.Name)))
            throw new InvalidDataException($"{Member} lists snapshots [{string.Join(", ", index.Snapshots)}] but describes [{string.Join(", ", index.Config.Snapshots.Select(s => s.Name))}]");
        if (index.Snapshots.Distinct().Count() != index.Snapshots.Count) throw new InvalidDataException($"{Member} lists a snapshot twice");
        return index;
    }
}
