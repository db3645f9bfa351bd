using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

[Cmdlet(VerbsDiagnostic.Test, "SystemContainerHost", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerHostCheck))]
public sealed class TestSystemContainerHostCommand : SystemContainerCmdlet
{
    /// <summary>How many containers the host limits are judged for; the daemon's default (100) when not given.</summary>
    [Parameter(Position = 0)]
    [ValidateRange(1, 100000)]
    public int? Containers { get; set; }

    /// <summary>Raise the limits that are too low, now and in the daemon's sysctl.d file, and remount a pure v2 host's cgroup2 with the nsdelegate and memory_recursiveprot it lost.</summary>
    [Parameter]
    public SwitchParameter Fix { get; set; }

    protected override void EndProcessing()
    {
        if (!Fix)
        {
            if (TryCall(c => c.GetHostChecksAsync(Containers, Cancel), null, out var checks)) WriteObject(checks, enumerateCollection: true);
            return;
        }
        if (!ShouldProcess("host kernel limits", $"Raise the limits that are too low for {Containers?.ToString() ?? "the default number of"} containers, now and in the daemon's sysctl.d file; remount cgroup2 with nsdelegate,memory_recursiveprot where it lacks them")) return;
        if (!TryCall(c => c.FixHostAsync(new HostFixRequest(Containers), Cancel), null, out var result)) return;
        foreach (var change in result.Changes) WriteVerbose($"{change.Key}: {change.Before} -> {change.After}");
        WriteVerbose($"kept in {result.SysctlFile}");
        WriteObject(result.Checks, enumerateCollection: true);
    }
}

[Cmdlet(VerbsCommon.Get, "SystemContainerHost")]
[OutputType(typeof(SystemContainerHost))]
public sealed class GetSystemContainerHostCommand : SystemContainerCmdlet
{
    protected override void EndProcessing()
    {
        if (TryCall(c => c.GetHostAsync(Cancel), null, out var host)) WriteObject(host);
    }
}
