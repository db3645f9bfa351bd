using System.Collections;
using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>What a container's device config keys come to: a device, its type and its properties.</summary>
public sealed record SystemContainerDevice
{
    public required string Container { get; init; }
    public required string Device { get; init; }
    /// <summary>nic, proxy or disk: the prefix of its config keys.</summary>
    public required string Type { get; init; }
    public Dictionary<string, string> Properties { get; init; } = new(StringComparer.Ordinal);

    public static readonly IReadOnlyList<string> Types = ["nic", "proxy", "disk"];

    /// <summary>The devices a container's config keys describe (TYPE.DEVICE.PROPERTY), by type and name.</summary>
    public static List<SystemContainerDevice> Of(SystemContainer c)
    {
        var devices = new SortedDictionary<(string, string), SystemContainerDevice>();
        foreach (var (key, value) in c.Config)
        {
            var parts = key.Split('.', 3);
            if (parts.Length < 3 || !Types.Contains(parts[0])) continue;
            if (!devices.TryGetValue((parts[0], parts[1]), out var d))
                devices[(parts[0], parts[1])] = d = new SystemContainerDevice { Container = c.Name, Device = parts[1], Type = parts[0] };
            d.Properties[parts[2]] = value;
        }
        return [.. devices.Values];
    }
}

[Cmdlet(VerbsCommon.Get, "SystemContainerDevice")]
[OutputType(typeof(SystemContainerDevice))]
public sealed class GetSystemContainerDeviceCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Only these devices, wildcards allowed.</summary>
    [Parameter(Position = 1)]
    [SupportsWildcards]
    public string[]? Device { get; set; }

    protected override void ProcessRecord()
    {
        var patterns = (Device ?? ["*"]).Select(d => new WildcardPattern(d, WildcardOptions.IgnoreCase)).ToList();
        foreach (var name in ExpandContainerNames(Name))
            if (TryCall(c => c.GetContainerAsync(name, Cancel), name, out var container))
                WriteObject(SystemContainerDevice.Of(container).Where(d => patterns.Any(p => p.IsMatch(d.Device))), enumerateCollection: true);
    }
}

[Cmdlet(VerbsCommon.Add, "SystemContainerDevice", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerDevice))]
public sealed class AddSystemContainerDeviceCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>The device's name: unique among the container's devices.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    public string Device { get; set; } = "";

    [Parameter(Mandatory = true, Position = 2)]
    [ValidateSet("nic", "proxy", "disk")]
    public string Type { get; set; } = "";

    /// <summary>The device's properties, like @{ listen = 'tcp:0.0.0.0:8080'; connect = 'tcp:127.0.0.1:80' } or @{ source = '/srv/data'; path = '/mnt/data' }.</summary>
    [Parameter(Mandatory = true)]
    public Hashtable Properties { get; set; } = new();

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var changes = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Properties) changes[$"{Type}.{Device}.{e.Key}"] = NewSystemContainerCommand.ConfigValue(e.Value);
        foreach (var name in ExpandContainerNames(Name))
        {
            if (!TryCall(c => c.GetContainerAsync(name, Cancel), name, out var container)) continue;
            if (SystemContainerDevice.Of(container).Any(d => string.Equals(d.Device, Device, StringComparison.OrdinalIgnoreCase)))
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"container '{name}' already has a device '{Device}'"),
                    "DeviceExists", ErrorCategory.ResourceExists, name));
                continue;
            }
            if (!ShouldProcess(name, $"Add {Type} device '{Device}'")) continue;
            if (!TryCall(c => c.UpdateContainerAsync(name, new ContainerUpdateRequest(changes), Cancel), name, out var updated)) continue;
            WriteVerbose($"{name}: added {Type} device '{Device}'{(updated.Pid is null ? "" : " (plugged into the running container)")}");
            if (PassThru) WriteObject(SystemContainerDevice.Of(updated).Where(d => d.Device == Device), enumerateCollection: true);
        }
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerDevice", SupportsShouldProcess = true)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerDeviceCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [Alias("Container")]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>The devices to remove, wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[] Device { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandContainerNames(Name))
        {
            if (!TryCall(c => c.GetContainerAsync(name, Cancel), name, out var container)) continue;
            var devices = SystemContainerDevice.Of(container);
            var chosen = new List<SystemContainerDevice>();
            foreach (var device in Device)
            {
                var pattern = new WildcardPattern(device, WildcardOptions.IgnoreCase);
                var found = devices.Where(d => pattern.IsMatch(d.Device)).ToList();
                if (found.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(device))
                    WriteError(new ErrorRecord(new ItemNotFoundException($"container '{name}' has no device '{device}'"),
                        "DeviceNotFound", ErrorCategory.ObjectNotFound, device));
                chosen.AddRange(found.Except(chosen));
            }
            if (chosen.Count == 0 || !ShouldProcess(name, $"Remove device {string.Join(", ", chosen.Select(d => $"'{d.Device}'"))}")) continue;
            var changes = chosen.SelectMany(d => d.Properties.Keys.Select(p => $"{d.Type}.{d.Device}.{p}"))
                .ToDictionary(k => k, _ => (string?)null, StringComparer.Ordinal);
            if (TryCall(c => c.UpdateContainerAsync(name, new ContainerUpdateRequest(changes), Cancel), name, out _))
                WriteVerbose($"{name}: removed {string.Join(", ", chosen.Select(d => $"{d.Type} device '{d.Device}'"))}");
        }
    }
}
