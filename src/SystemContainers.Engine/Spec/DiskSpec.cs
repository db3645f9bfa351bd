namespace SystemContainers.Engine.Spec;

/// <summary>
/// A disk device from disk.&lt;device&gt;.* keys: a host directory or file (source) bound at a
/// path inside the container, always nosuid and nodev, read-only if asked, and by default
/// idmapped through the container's user namespace so host ids show as the same ids inside.
/// </summary>
public sealed record DiskSpec(string Device, string Source, string Path, bool ReadOnly, bool Shift)
{
    public const string Prefix = "disk.";
    public static readonly IReadOnlyList<string> Properties = ["source", "path", "readonly", "shift"];

    /// <summary>The kernel's own trees, whose masks a disk there could cover.</summary>
    private static readonly string[] Refused = ["/proc", "/sys"];

    public static string Key(string device, string property) => $"{Prefix}{device}.{property}";

    public static bool IsDiskKey(string key) => key.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Validates every disk.* key of a config and returns the devices, ordered by name.</summary>
    public static IReadOnlyList<DiskSpec> ParseAll(IReadOnlyDictionary<string, string> config)
    {
        var disks = DeviceKeys.Group(config, Prefix, Properties, "a disk device").Select(d => FromProperties(d.Key, d.Value)).ToList();
        foreach (var group in disks.GroupBy(d => d.Path, StringComparer.Ordinal).Where(g => g.Count() > 1))
            throw EngineException.Invalid("InvalidConfigValue", $"disks {string.Join(" and ", group.Select(d => d.Device))} are both mounted at '{group.Key}'");
        return disks;
    }

    /// <summary>Refuses a source the host does not have: checked when the key is set, not at every parse.</summary>
    public void CheckSource()
    {
        if (!File.Exists(Source) && !Directory.Exists(Source))
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{Key(Device, "source")}': '{Source}' does not exist on the host");
    }

    private static DiskSpec FromProperties(string device, Dictionary<string, string> p)
    {
        foreach (var property in (ReadOnlySpan<string>)["source", "path"])
            if (!p.ContainsKey(property))
                throw EngineException.Invalid("InvalidConfigValue", $"disk device '{device}' needs {Key(device, property)} as well");
        string source = CheckPath(Key(device, "source"), p["source"]);
        string path = CheckPath(Key(device, "path"), p["path"]);
        if (path == "/" || Refused.Any(r => path == r || path.StartsWith(r + "/", StringComparison.Ordinal)))
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{Key(device, "path")}': a disk cannot be mounted at '{path}' (not on /, /proc or /sys)");
        bool readOnly = p.TryGetValue("readonly", out var ro) && ContainerConfig.ParseBool(Key(device, "readonly"), ro);
        bool shift = !p.TryGetValue("shift", out var s) || ContainerConfig.ParseBool(Key(device, "shift"), s);
        return new DiskSpec(device, source, path, readOnly, shift);
    }

    /// <summary>An absolute path without empty, "." or ".." parts, so what is checked is what is mounted.</summary>
    private static string CheckPath(string key, string value)
    {
        var parts = value.Split('/');
        if (!value.StartsWith('/') || (value.Length > 1 && parts.Skip(1).Any(part => part is "" or "." or "..")))
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}' must be an absolute path without '.', '..' or empty parts (like /srv/data), not '{value}'");
        return value;
    }
}
