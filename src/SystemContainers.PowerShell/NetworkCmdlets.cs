using System.Collections;
using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

public sealed class NetworkNameCompleter : DaemonNameCompleter
{
    protected override IEnumerable<(string, string)> Names(SystemContainersClient client) =>
        client.ListNetworksAsync().GetAwaiter().GetResult().Select(n => (n.Name, $"{n.Name} ({n.IPv4})"));
}

[Cmdlet(VerbsCommon.Get, "SystemContainerNetwork")]
[OutputType(typeof(SystemContainerNetwork))]
public sealed class GetSystemContainerNetworkCommand : SystemContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(NetworkNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        if (TryCall(c => c.ListNetworksAsync(Cancel), null, out var all))
            WriteMatches(all, Name, (n, pattern, _) => pattern.IsMatch(n.Name), "NetworkNotFound", "network");
    }
}

/// <summary>New and Set: the typed parameters and -Config become the network's config keys.</summary>
public abstract class NetworkConfigCmdlet : SystemContainerCmdlet
{
    /// <summary>The bridge's address and prefix, like 10.0.3.1/24.</summary>
    [Parameter]
    [Alias("IPv4Address")]
    public string? IPv4 { get; set; }

    /// <summary>The bridge's IPv6 address in a /64, like fd42:1:2:3::1/64; "none" removes IPv6.</summary>
    [Parameter]
    [Alias("IPv6Address")]
    public string? IPv6 { get; set; }

    /// <summary>Masquerade traffic that leaves the network (IPv4, and IPv6 where set).</summary>
    [Parameter]
    public SwitchParameter Nat { get; set; }

    /// <summary>The DNS domain containers are named under (default sc: web.sc).</summary>
    [Parameter]
    public string? Domain { get; set; }

    /// <summary>Further config keys (ipv4.address, ipv4.nat, ipv6.address, ipv6.nat, dns.domain): a hashtable, or KEY=VALUE strings, whose keys complete on Tab.</summary>
    [Parameter]
    [ConfigArgument]
    [ArgumentCompleter(typeof(NetworkConfigKeyCompleter))]
    public Hashtable? Config { get; set; }

    protected Dictionary<string, string?> Changes(bool hasIPv6)
    {
        var changes = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Config ?? new Hashtable()) changes[e.Key.ToString()!] = NewSystemContainerCommand.ConfigValue(e.Value);
        if (IPv4 is not null) changes["ipv4.address"] = IPv4;
        if (IPv6 is not null) changes["ipv6.address"] = IPv6 == "none" ? null : IPv6;
        if (Domain is not null) changes["dns.domain"] = Domain;
        if (MyInvocation.BoundParameters.ContainsKey(nameof(Nat)))
        {
            changes["ipv4.nat"] = Nat ? "true" : "false";
            bool v6 = IPv6 is not null ? IPv6 != "none" : hasIPv6;
            changes["ipv6.nat"] = Nat && v6 ? "true" : null;
        }
        return changes;
    }
}

[Cmdlet(VerbsCommon.New, "SystemContainerNetwork", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerNetwork))]
public sealed class NewSystemContainerNetworkCommand : NetworkConfigCmdlet
{
    /// <summary>The network's name, which is also its bridge's interface name (at most 15 characters).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    public string Name { get; set; } = "";

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, "Create system container network")) return;
        var config = Changes(hasIPv6: false).Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value!, StringComparer.Ordinal);
        if (TryCall(c => c.CreateNetworkAsync(new NetworkCreateRequest(Name, config), Cancel), Name, out var created))
            WriteObject(created);
    }
}

[Cmdlet(VerbsCommon.Set, "SystemContainerNetwork", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerNetwork))]
public sealed class SetSystemContainerNetworkCommand : NetworkConfigCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(NetworkNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!TryCall(c => c.ListNetworksAsync(Cancel), null, out var all)) return;
        foreach (var name in ExpandNames(Name, _ => Task.FromResult(all), n => [n.Name]))
        {
            var current = all.FirstOrDefault(n => n.Name == name);
            var changes = Changes(current?.IPv6 is not null);
            if (changes.Count == 0)
            {
                WriteError(new ErrorRecord(new ArgumentException("name something to change: -IPv4, -IPv6, -Nat, -Domain or -Config"),
                    "NothingToChange", ErrorCategory.InvalidArgument, name));
                return;
            }
            string summary = string.Join(", ", changes.Select(kv => $"{kv.Key}={kv.Value ?? "(unset)"}"));
            if (!ShouldProcess(name, $"Set {summary}")) continue;
            if (TryCall(c => c.UpdateNetworkAsync(name, new NetworkUpdateRequest(changes), Cancel), name, out var updated) && PassThru)
                WriteObject(updated);
        }
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerNetwork", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerNetworkCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(NetworkNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Remove without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandNetworkNames(Name))
            if (ShouldRemove(name, "Remove system container network", Force))
                TryCall(c => c.DeleteNetworkAsync(name, Cancel), name);
    }
}

[Cmdlet(VerbsCommon.Get, "SystemContainerNetworkLease")]
[OutputType(typeof(SystemContainerNetworkLease))]
public sealed class GetSystemContainerNetworkLeaseCommand : SystemContainerCmdlet
{
    /// <summary>The networks whose leases to list, wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(NetworkNameCompleter))]
    public string[] Name { get; set; } = [];

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandNetworkNames(Name))
            if (TryCall(c => c.ListLeasesAsync(name, Cancel), name, out var leases))
                WriteObject(leases, enumerateCollection: true);
    }
}
