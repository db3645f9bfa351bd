using System.Collections;
using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>Completes names from the running daemon; never starts one.</summary>
public abstract class DaemonNameCompleter : IArgumentCompleter
{
    protected abstract IEnumerable<(string Name, string Tooltip)> Names(SystemContainersClient client);

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var pattern = new WildcardPattern(wordToComplete + "*", WildcardOptions.IgnoreCase);
        if (RemoteStore.Resolve(fakeBoundParameters["Remote"] as string) is not string remote)
        {
            var client = DaemonConnection.IfRunning();
            return client is null ? [] : Complete(client, pattern);
        }
        // An unknown or unreachable remote completes nothing; completion never fails.
        try { return Complete(RemoteStore.Client(remote), pattern); }
        catch (SystemContainersApiException) { return []; }
    }

    private List<CompletionResult> Complete(SystemContainersClient client, WildcardPattern pattern) =>
        Names(client).Where(n => pattern.IsMatch(n.Name))
            .Select(n => new CompletionResult(n.Name, n.Name, CompletionResultType.ParameterValue, n.Tooltip)).ToList();
}

public sealed class ContainerNameCompleter : DaemonNameCompleter
{
    protected override IEnumerable<(string, string)> Names(SystemContainersClient client) =>
        client.ListContainersAsync().GetAwaiter().GetResult().Select(c => (c.Name, $"{c.Name} ({c.Status})"));
}

[Cmdlet(VerbsCommon.Get, "SystemContainer")]
[OutputType(typeof(SystemContainer))]
public sealed class GetSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        if (TryCall(c => c.ListContainersAsync(Cancel), null, out var all))
            WriteMatches(all, Name, (c, pattern, _) => pattern.IsMatch(c.Name), "ContainerNotFound", "container");
    }
}

[Cmdlet(VerbsCommon.New, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class NewSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    public string Name { get; set; } = "";

    /// <summary>An alias or fingerprint; images piped from Get-SystemContainerImage bind by fingerprint.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [Alias("Fingerprint")]
    [ArgumentCompleter(typeof(ImageNameCompleter))]
    public string Image { get; set; } = "";

    /// <summary>Config keys: a hashtable, or KEY=VALUE strings, whose keys complete on Tab.</summary>
    [Parameter]
    [ConfigArgument]
    [ArgumentCompleter(typeof(ContainerConfigKeyCompleter))]
    public Hashtable? Config { get; set; }

    [Parameter]
    public SwitchParameter Privileged { get; set; }

    /// <summary>The managed network eth0 joins (default: the default network), or "none" for no NIC.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(NetworkNameCompleter))]
    public string? Network { get; set; }

    [Parameter]
    public SwitchParameter Start { get; set; }

    /// <summary>The storage pool the container's root goes in (default: the default pool).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(StoragePoolNameCompleter))]
    public string? StoragePool { get; set; }

    /// <summary>Makes this many containers, the %d in Name numbering them from 1 (web%d: web1, web2, ...), in parallel.</summary>
    [Parameter]
    [ValidateRange(1, 10000)]
    public int Count { get; set; }

    /// <summary>Containers made at once with -Count (default 16).</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = 16;

    /// <summary>Config values as the daemon takes them: booleans as true/false, null as null.</summary>
    internal static string? ConfigValue(object? value) => value switch
    {
        null => null,
        bool b => b ? "true" : "false",
        var v => LanguagePrimitives.ConvertTo<string>(v),
    };

    protected override void ProcessRecord()
    {
        var names = Names();
        var config = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Config ?? new Hashtable()) config[e.Key.ToString()!] = ConfigValue(e.Value) ?? "";
        if (Privileged) config["security.privileged"] = "true";
        if (Network == "none") config["nic.eth0.type"] = "none";
        else if (Network is not null) config["nic.eth0.network"] = Network;
        var confirmed = names.Where(n => ShouldProcess(n, $"Create system container from image '{Image}'")).ToList();
        CallEach(confirmed.ConvertAll(Here), ThrottleLimit, "New-SystemContainer",
            (c, name, ct) => c.CreateContainerAsync(new ContainerCreateRequest(name, Image, config, Start, StoragePool), ct), (name, created) =>
            {
                WriteVerbose($"{name}: created from image {created.Image ?? created.ImageFingerprint[..12]} ({created.ImageFingerprint[..12]}), {created.Config.Count} config keys");
                if (Start) WriteVerbose($"{name}: {ContainerText.Describe(created)}");
                WriteObject(created);
            });
    }

    /// <summary>Name, or with -Count the names its %d numbers.</summary>
    private List<string> Names()
    {
        bool numbered = Name.Contains("%d", StringComparison.Ordinal);
        if (!MyInvocation.BoundParameters.ContainsKey(nameof(Count)))
        {
            if (numbered)
                ThrowTerminatingError(new ErrorRecord(new ArgumentException($"name '{Name}' has a %d, which only -Count fills in"), "NameNeedsCount", ErrorCategory.InvalidArgument, Name));
            return [Name];
        }
        if (!numbered || Name.IndexOf("%d", StringComparison.Ordinal) != Name.LastIndexOf("%d", StringComparison.Ordinal))
            ThrowTerminatingError(new ErrorRecord(new ArgumentException($"with -Count, the name needs one %d for the number (web%d: web1, web2, ...), not '{Name}'"),
                "CountNeedsPattern", ErrorCategory.InvalidArgument, Name));
        return [.. Enumerable.Range(1, Count).Select(i => Name.Replace("%d", i.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal))];
    }
}

/// <summary>What the daemon says a container now is, for -Verbose: its status, init and addresses.</summary>
internal static class ContainerText
{
    public static string Describe(SystemContainer c) =>
        c.Status.ToLowerInvariant() + (c.Pid is int pid ? $", init pid {pid}" : "") +
        (c.IPv4.Count > 0 ? $", {c.IPv4}" : "") + (c.LastExitCode is int code && c.Pid is null ? $", last exit code {code}" : "") +
        (c.LastExitSignal is int sig && c.Pid is null ? $", last exit signal {sig}" : "");
}

/// <summary>
/// Start, Stop, Restart, Suspend and Resume: the same pipeline shape around one state action. A
/// container already in the state asked for is no error (as Start-VM and Stop-Service): the
/// cmdlet says so with -Verbose and passes the container through.
/// </summary>
public abstract class ContainerStateCmdlet : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected abstract string Action { get; }
    protected virtual ContainerStateRequest Request => new(Action);

    /// <summary>The daemon's error id for "already in that state" (AlreadyRunning, NotRunning, ...).</summary>
    protected abstract string SettledId { get; }

    /// <summary>What a container already in that state comes to: itself, as it is.</summary>
    protected virtual Task<SystemContainer> Settle(SystemContainersClient client, string name, CancellationToken ct) => client.GetContainerAsync(name, ct);

    /// <summary>Runs the changes in a background job (Get-Job, Receive-Job); the job is written at once.</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }

    /// <summary>Containers the daemon changes at once (default 16); it also runs at most its own bound of starts at a time.</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = 16;

    // Confirmed in ProcessRecord, changed together in EndProcessing: a fleet in bulk requests, per remote.
    private readonly List<ContainerTarget> _targets = [];

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandContainerNames(Name))
            if (ShouldProcess(name, $"{char.ToUpperInvariant(Action[0])}{Action[1..]} system container")) _targets.Add(Here(name));
    }

    protected override void EndProcessing()
    {
        if (_targets.Count == 0) return;
        if (!AsJob)
        {
            CallBulk(_targets, BulkBatch, $"{MyInvocation.MyCommand.Name}",
                (c, names, ct) => c.ChangeStatesAsync(new ContainerBulkStateRequest(names, Request.Action, Request.Force, Request.Timeout, ThrottleLimit,
                    Request.Stateful, Request.Stateless), ct),
                Changed, (_, done) =>
            {
                WriteVerbose(done.Verbose);
                if (PassThru) WriteObject(done.Result);
            });
            return;
        }
        var clients = ClientsFor(_targets);
        var job = new SystemContainerJob(MyInvocation.Line, $"{MyInvocation.MyCommand.Name} {string.Join(", ", _targets)}",
            string.Join(", ", clients.Values.Select(c => c.Target)));
        JobRepository.Add(job);
        job.Start<SystemContainer>(_targets, async (target, ct) =>
        {
            var (result, verbose) = await Change(clients[target.Remote ?? ""], target.Name, ct);
            return (PassThru ? result : null, verbose);
        });
        WriteObject(job);
    }

    /// <summary>A bulk answer: the change, or what the container already in that state comes to, and what -Verbose says of it.</summary>
    private async Task<(SystemContainer Result, string Verbose)> Changed(SystemContainersClient client, ContainerBulkResult answer, CancellationToken ct)
    {
        if (answer.Container is SystemContainer result) return (result, $"{answer.Name}: {ContainerText.Describe(result)}");
        if (answer.ErrorId == SettledId) return (await Settle(client, answer.Name, ct), $"{answer.Error}: nothing to do");
        throw Failure(answer);
    }

    /// <summary>The change, or what the container already in that state comes to, and what -Verbose says of it.</summary>
    private async Task<(SystemContainer Result, string Verbose)> Change(SystemContainersClient client, string name, CancellationToken ct)
    {
        try
        {
            var result = await client.ChangeStateAsync(name, Request, ct);
            return (result, $"{name}: {ContainerText.Describe(result)}");
        }
        catch (SystemContainersApiException e) when (e.ErrorId == SettledId)
        {
            return (await Settle(client, name, ct), $"{e.Message}: nothing to do");
        }
    }
}

[Cmdlet(VerbsLifecycle.Start, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class StartSystemContainerCommand : ContainerStateCmdlet
{
    protected override string Action => "start";
    protected override string SettledId => "AlreadyRunning";

    /// <summary>Discard the state a stateful stop saved and boot afresh (without it, the saved processes are restored).</summary>
    [Parameter]
    public SwitchParameter Stateless { get; set; }

    protected override ContainerStateRequest Request => new(Action, Stateless: Stateless);
}

[Cmdlet(VerbsLifecycle.Suspend, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class SuspendSystemContainerCommand : ContainerStateCmdlet
{
    protected override string Action => "freeze";
    protected override string SettledId => "AlreadyFrozen";
}

[Cmdlet(VerbsLifecycle.Resume, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class ResumeSystemContainerCommand : ContainerStateCmdlet
{
    protected override string Action => "unfreeze";
    protected override string SettledId => "NotFrozen";
}

[Cmdlet(VerbsCommon.Set, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class SetSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Keys to set (a hashtable, or KEY=VALUE strings, whose keys complete on Tab); $null or an empty string removes a key.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ConfigArgument]
    [ArgumentCompleter(typeof(ContainerConfigKeyCompleter))]
    public Hashtable Config { get; set; } = new();

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var changes = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Config) changes[e.Key.ToString()!] = NewSystemContainerCommand.ConfigValue(e.Value);
        string summary = string.Join(", ", changes.Select(kv => $"{kv.Key}={kv.Value ?? "(unset)"}"));
        foreach (var name in ExpandContainerNames(Name))
        {
            if (!ShouldProcess(name, $"Set {summary}")) continue;
            if (!TryCall(c => c.UpdateContainerAsync(name, new ContainerUpdateRequest(changes), Cancel), name, out var result)) continue;
            WriteVerbose($"{name}: set {summary}{(result.Pid is null ? "" : " (applied to the running container)")}");
            if (PassThru) WriteObject(result);
        }
    }
}

/// <summary>Gives a stopped container a new name (LXD's rename); it keeps its config, snapshots, NICs and addresses.</summary>
[Cmdlet(VerbsCommon.Rename, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class RenameSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, Position = 1)]
    public string NewName { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!ShouldProcess(Name, $"Rename system container to {NewName}")) return;
        if (TryCall(c => c.RenameContainerAsync(Name, NewName, Cancel), Name, out var renamed) && PassThru)
            WriteObject(renamed);
    }
}

/// <summary>
/// Copies a container, or one of its snapshots, to a new stopped container (LXD's copy): the same
/// image and config, new MACs and host-side NIC names, no fixed address, and the container's
/// snapshots unless -InstanceOnly (a snapshot's copy has none). With -DestinationHost the copy is
/// made by another daemon, which pulls the stopped container from this one (see
/// ContainerTransferCmdlet): config, fixed addresses and, unless -InstanceOnly, its snapshots, with new MACs.
/// </summary>
[Cmdlet(VerbsCommon.Copy, "SystemContainer", SupportsShouldProcess = true, DefaultParameterSetName = LocalSet)]
[OutputType(typeof(SystemContainer))]
public sealed class CopySystemContainerCommand : ContainerTransferCmdlet
{
    private const string LocalSet = "Local";
    private const string HostSet = "Host";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>The new container's name; with -DestinationHost, the source's name unless given.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = LocalSet)]
    [Parameter(Position = 1, ParameterSetName = HostSet)]
    [Alias("NewName")]
    public string Destination { get; set; } = "";

    /// <summary>Copy this snapshot of the container instead of the container as it is now.</summary>
    [Parameter(ParameterSetName = LocalSet)]
    public string? Snapshot { get; set; }

    /// <summary>The remote whose daemon makes the copy ("local" for this host's daemon).</summary>
    [Parameter(Mandatory = true, ParameterSetName = HostSet)]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string DestinationHost { get; set; } = "";

    /// <summary>Copies the container alone, without its snapshots (LXD's --instance-only).</summary>
    [Parameter]
    public SwitchParameter InstanceOnly { get; set; }

    /// <summary>The storage pool the copy goes in (default: the source's on this host; the default pool on another).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(StoragePoolNameCompleter))]
    public string? StoragePool { get; set; }

    protected override void ProcessRecord()
    {
        if (ParameterSetName == HostSet)
        {
            string name = Destination.Length > 0 ? Destination : Name;
            if (!ShouldProcess(Name, $"Copy system container to {DestinationHost} as {name}")) return;
            if (!InstanceOnly) WarnOfStatefulSnapshots(Name, $"the snapshot of {name} on {DestinationHost}");
            if (Transfer(Name, DestinationHost, name, StoragePool, includeSnapshots: !InstanceOnly, move: false, out var copied)) WriteObject(copied);
            return;
        }
        string what = Snapshot is null ? Name : $"{Name}/{Snapshot}";
        if (!ShouldProcess(what, $"Copy system container to {Destination}")) return;
        if (Snapshot is null && !InstanceOnly) WarnOfStatefulSnapshots(Name, $"the snapshot of {Destination}");
        if (TryCall(c => c.CopyContainerAsync(Name, Snapshot, Destination, StoragePool, InstanceOnly, Cancel), Name, out var made))
            WriteObject(made);
    }
}

/// <summary>
/// Moves a stopped container to another host: the destination's daemon pulls it, with its
/// snapshots, config, MACs and fixed addresses, and the container is removed here only once the
/// destination has it complete. -Live moves a running one (migration.stateful=true): criu dumps it
/// with its network locked, the destination restores it with its MAC and addresses, and it is
/// removed here once it runs there; on any failure it runs on here.
/// </summary>
[Cmdlet(VerbsCommon.Move, "SystemContainer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(SystemContainer))]
public sealed class MoveSystemContainerCommand : ContainerTransferCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>The remote whose daemon gets the container ("local" for this host's daemon).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string DestinationHost { get; set; } = "";

    /// <summary>The container's name on the destination (default: its name here).</summary>
    [Parameter]
    [Alias("Destination")]
    public string? NewName { get; set; }

    /// <summary>The storage pool it goes in on the destination (default: the destination's default pool).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(StoragePoolNameCompleter))]
    public string? StoragePool { get; set; }

    /// <summary>Moves the running container with its processes and connections (criu), instead of refusing it.</summary>
    [Parameter]
    public SwitchParameter Live { get; set; }

    protected override void ProcessRecord()
    {
        string name = string.IsNullOrEmpty(NewName) ? Name : NewName;
        if (!ShouldProcess(Name, $"Move system container{(Live ? " live" : "")} to {DestinationHost} as {name}")) return;
        WarnOfStatefulSnapshots(Name, $"the snapshot of {name} on {DestinationHost}");
        if (!Transfer(Name, DestinationHost, name, StoragePool, includeSnapshots: true, move: true, out var moved, Live)) return;
        // A live move's source removed the container itself once the destination ran it.
        if (Live) WriteObject(moved);
        // The destination has said the container is complete there: only now is the source removed.
        else if (TryCall(c => c.DeleteContainerAsync(Name, false, Cancel), Name)) WriteObject(moved);
    }
}

/// <summary>Stop and Restart: a clean shutdown with a timeout, or a kill with -Force.</summary>
public abstract class ContainerShutdownCmdlet : ContainerStateCmdlet
{
    /// <summary>Kill at once instead of asking init to shut down.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Seconds to wait for a clean shutdown before killing (default: the container's boot.stop.timeout, 30).</summary>
    [Parameter]
    [ValidateRange(0, 3600)]
    public int? Timeout { get; set; }

    protected override ContainerStateRequest Request => new(Action, Force, Timeout);
}

[Cmdlet(VerbsLifecycle.Stop, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class StopSystemContainerCommand : ContainerShutdownCmdlet
{
    protected override string Action => "stop";
    protected override string SettledId => "NotRunning";

    /// <summary>Save the processes, their memory and open files (criu) before they end; the next start restores them. Needs migration.stateful=true.</summary>
    [Parameter]
    public SwitchParameter Stateful { get; set; }

    protected override ContainerStateRequest Request => new(Action, Force, Timeout, Stateful);
}

[Cmdlet(VerbsLifecycle.Restart, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class RestartSystemContainerCommand : ContainerShutdownCmdlet
{
    protected override string Action => "restart";
    protected override string SettledId => "NotRunning";

    /// <summary>A stopped container is started, as Restart-Service starts a stopped service.</summary>
    protected override Task<SystemContainer> Settle(SystemContainersClient client, string name, CancellationToken ct) =>
        client.ChangeStateAsync(name, new ContainerStateRequest("start"), ct);
}

[Cmdlet(VerbsCommon.Remove, "SystemContainer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Stop (kill) a running container first, without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>Containers the daemon removes at once (default 16); it also runs at most its own bound of removals at a time.</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = 16;

    // Confirmed in ProcessRecord, removed together in EndProcessing: a fleet in bulk requests, per remote.
    private readonly List<ContainerTarget> _targets = [];

    protected override void ProcessRecord()
    {
        foreach (var name in ExpandContainerNames(Name))
            if (ShouldRemove(name, "Remove system container and its files", Force)) _targets.Add(Here(name));
    }

    protected override void EndProcessing() =>
        CallBulk(_targets, BulkBatch, "Remove-SystemContainer",
            (c, names, ct) => c.DeleteContainersAsync(new ContainerBulkDeleteRequest(names, Force, ThrottleLimit), ct),
            (_, answer, _) => answer.ErrorId is null ? Task.FromResult(true) : throw Failure(answer),
            (name, _) => WriteVerbose($"{name}: removed with its files"));
}
