using System.Diagnostics;
using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>What Wait-SystemContainer waits for.</summary>
public enum WaitCondition
{
    /// <summary>The container's init is running.</summary>
    Running,
    /// <summary>Running with an IPv4 address on a NIC.</summary>
    IPv4,
    /// <summary>systemd inside has finished booting (systemctl is-system-running: running, or degraded with a warning).</summary>
    SystemdRunning,
}

[Cmdlet(VerbsLifecycle.Wait, "SystemContainer")]
[OutputType(typeof(SystemContainer))]
public sealed class WaitSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter(Position = 1)]
    public WaitCondition For { get; set; } = WaitCondition.Running;

    /// <summary>Seconds to wait for all the containers together; without it, until Ctrl+C.</summary>
    [Parameter]
    [ValidateRange(0, 31_536_000)]
    public double? Timeout { get; set; }

    /// <summary>Write each container once it is ready.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandContainerNames(Name))
            if (WaitFor(name) is { } ready && PassThru) WriteObject(ready);
    }

    private SystemContainer? WaitFor(string name)
    {
        for (;;)
        {
            if (!TryCall(c => c.GetContainerAsync(name, Cancel), name, out var container)) return null;
            if (container.Status == "Error")
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"container '{name}' is damaged: {container.Error}"),
                    "ContainerDamaged", ErrorCategory.InvalidResult, name));
                return null;
            }
            if (For == WaitCondition.SystemdRunning && container.InitKind != "systemd")
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"container '{name}' does not run systemd (its init is {container.InitKind})"),
                    "NotSystemd", ErrorCategory.InvalidOperation, name));
                return null;
            }
            if (container.Status == "Running" && Ready(container)) return container;
            if (Timeout is double limit && _clock.Elapsed.TotalSeconds >= limit)
            {
                WriteError(new ErrorRecord(new TimeoutException($"container '{name}' was not {Describe()} within {limit} s (it is {container.Status})"),
                    "WaitTimeout", ErrorCategory.OperationTimeout, name));
                return null;
            }
            var pause = For == WaitCondition.SystemdRunning ? PollInterval * 5 : PollInterval;
            if (Cancel.WaitHandle.WaitOne(pause)) throw new PipelineStoppedException();
        }
    }

    private bool Ready(SystemContainer container)
    {
        switch (For)
        {
            case WaitCondition.Running: return true;
            case WaitCondition.IPv4: return container.IPv4.Count > 0;
            default:
                // Until its manager is up, systemctl fails; any failure means "not yet".
                try
                {
                    var r = Client.ExecAsync(container.Name, new ExecCommandRequest(["systemctl", "is-system-running"]), Cancel).GetAwaiter().GetResult();
                    string state = r.Stdout.Trim();
                    if (state == "degraded") WriteWarning($"container '{container.Name}' booted degraded: some units failed (systemctl --failed)");
                    return state is "running" or "degraded";
                }
                catch (SystemContainersApiException)
                {
                    return false;
                }
        }
    }

    private string Describe() => For switch
    {
        WaitCondition.Running => "running",
        WaitCondition.IPv4 => "running with an IPv4 address",
        _ => "booted (systemd running)",
    };
}
