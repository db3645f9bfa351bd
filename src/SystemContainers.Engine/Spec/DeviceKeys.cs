using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Spec;

/// <summary>Device config keys, TYPE.DEVICE.PROPERTY (nic.eth0.network, proxy.web.listen): grouped by device and checked.</summary>
public static partial class DeviceKeys
{
    /// <summary>The properties of each device of one type, by device name; a bad device name or an unknown property is refused.</summary>
    public static SortedDictionary<string, Dictionary<string, string>> Group(IReadOnlyDictionary<string, string> config, string prefix,
        IReadOnlyList<string> properties, string kind)
    {
        var devices = new SortedDictionary<string, Dictionary<string, string>>(StringComparer.Ordinal);
        foreach (var (key, value) in config)
        {
            if (!key.StartsWith(prefix, StringComparison.Ordinal)) continue;
            string rest = key[prefix.Length..];
            int dot = rest.IndexOf('.');
            string device = dot < 0 ? rest : rest[..dot];
            string property = dot < 0 ? "" : rest[(dot + 1)..];
            if (!DevicePattern().IsMatch(device) || device.Length > 15)
                throw EngineException.Invalid("InvalidConfigKey", $"config key '{key}': device name '{device}' must be 1 to 15 characters of a-z, 0-9 and '_', starting with a letter");
            if (!properties.Contains(property))
                throw EngineException.Invalid("UnknownConfigKey", $"unknown config key '{key}'; {kind} has {string.Join(", ", properties.Select(p => $"{prefix}{device}.{p}"))}");
            if (!devices.TryGetValue(device, out var props)) devices[device] = props = new(StringComparer.Ordinal);
            props[property] = value;
        }
        return devices;
    }

    [GeneratedRegex(@"^[a-z][a-z0-9_]*\z")]
    private static partial Regex DevicePattern();
}
