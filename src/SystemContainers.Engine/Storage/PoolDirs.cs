using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Storage;

/// <summary>The directory checks and the idmapped root mount the dir and btrfs drivers share.</summary>
internal static class PoolDirs
{
    private const UnixFileMode RootOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>A directory only root can enter: volumes hold the images' setuid files with unshifted owners.</summary>
    public static void Make(string path) => Directory.CreateDirectory(path, RootOnly);

    public static void MakeNew(string path)
    {
        if (Directory.Exists(path))
            throw EngineException.Conflict("PoolSourceInUse", $"{path} already exists: the source holds another pool's volumes");
        Make(path);
    }

    public static void CheckSource(string path)
    {
        if (!Directory.Exists(path))
            throw EngineException.Invalid("InvalidPoolSource", $"pool source {path} is not an existing directory");
    }

    public static void CheckPresent(string path)
    {
        if (!Directory.Exists(path))
            throw EngineException.NotFound("PoolUnavailable", $"the pool's volume directory {path} is missing");
    }

    public static EngineException NoIncremental(string driver) =>
        EngineException.Invalid("StreamFormatUnsupported", $"the {driver} storage driver sends whole trees only; incremental streams need a btrfs pool");

    public static EngineException NoFormat(string driver, VolumeFormat format) =>
        EngineException.Invalid("StreamFormatUnsupported", $"the {driver} storage driver has no {format.ToString().ToLowerInvariant()} volume streams");

    public static EngineException NoRootSize(string driver) =>
        EngineException.Invalid("DiskLimitUnsupported", $"the {driver} storage driver cannot enforce limits.disk (a root disk size); use a btrfs pool");

    public static IReadOnlyList<string> Names(string volumes) =>
        [.. Directory.EnumerateDirectories(volumes).Select(Path.GetFileName).OfType<string>()];

    public static void CheckAbsent(string volume)
    {
        if (Directory.Exists(volume))
            throw EngineException.Conflict("VolumeExists", $"volume {volume} already exists; remove it by hand if no container owns it");
    }

    /// <summary>Moves a volume's directory (a btrfs subvolume is one) to its new name, unless only the new one is there already.</summary>
    public static void Rename(string from, string to)
    {
        if (!Directory.Exists(from) && Directory.Exists(to)) return;
        CheckAbsent(to);
        if (Directory.Exists(from)) Directory.Move(from, to);
    }

    /// <summary>The volume itself as the root, idmapped into the container's user namespace; it holds no shifted copy to fall back on.</summary>
    public static IReadOnlyList<RootMount> IdmappedRoot(string driver, string volume, IdMap? map, bool shifted, RootTarget at)
    {
        if (map is not null && shifted)
            throw new EngineException(FailureKind.Failed, "IdmapUnavailable",
                $"the {driver} storage driver mounts {volume} idmapped, and idmapped mounts are unavailable here; use the default pool");
        return [RootMount.Bind(volume, at.Target, idmap: map is not null)];
    }
}
