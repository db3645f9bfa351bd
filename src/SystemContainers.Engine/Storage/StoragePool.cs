using System.Globalization;
using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// &lt;state&gt;/storage-pools/&lt;name&gt;.json: a pool's name, driver, source (a directory, or
/// the loop file a btrfs pool made) and config (size, description). The default pool is built in
/// and has no file.
/// </summary>
public sealed record StoragePool(
    string Name,
    string Driver,
    string Source,
    IReadOnlyDictionary<string, string> Config,
    DateTimeOffset Created,
    int SchemaVersion = StoragePool.CurrentSchema)
{
    public const int CurrentSchema = 1;
    public const string DefaultName = "default";

    public static readonly IReadOnlyList<string> Drivers = ["overlay", "dir", "btrfs"];

    /// <summary>The config keys a pool takes: size only where a btrfs pool makes its loop file, and only when it is made.</summary>
    public static readonly IReadOnlyList<string> Keys = ["size", "description"];

    /// <summary>A btrfs pool on a loop file it made (Source), mounted under the state directory.</summary>
    public bool Loop { get; init; }
}

/// <summary>Pool names are path names and URL segments: lowercase letters, digits and '-'.</summary>
public static partial class StoragePoolName
{
    [GeneratedRegex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\z")]
    private static partial Regex Pattern();

    public static void Validate(string? name)
    {
        if (string.IsNullOrEmpty(name) || !Pattern().IsMatch(name))
            throw EngineException.Invalid("InvalidPoolName",
                $"storage pool name '{Spec.DisplayText.Escape(name ?? "")}' is invalid: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'");
    }
}

/// <summary>Sizes as pools take them: bytes, or a number with KiB, MiB, GiB, TiB (or kB, MB, GB, TB).</summary>
public static partial class ByteSize
{
    [GeneratedRegex("^([0-9]+)\\s*([KMGT]i?B|[kKMGT]B)?\\z")]
    private static partial Regex Pattern();

    public static long Parse(string key, string text)
    {
        var m = Pattern().Match(text.Trim());
        if (!m.Success || !long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out long n))
            throw EngineException.Invalid("InvalidConfig", $"{key} '{Spec.DisplayText.Escape(text)}' is not a size (like 5GiB or 500MB)");
        string unit = m.Groups[2].Value;
        int power = unit.Length == 0 ? 0 : "KMGT".IndexOf(char.ToUpperInvariant(unit[0])) + 1;
        long factor = (long)Math.Pow(unit.Contains('i') || unit.Length == 0 ? 1024 : 1000, power);
        if (n > long.MaxValue / factor) throw EngineException.Invalid("InvalidConfig", $"{key} '{text}' is too large");
        return n * factor;
    }
}
