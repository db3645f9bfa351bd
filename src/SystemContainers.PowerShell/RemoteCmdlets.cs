using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>Completes the names of this user's remotes.</summary>
public sealed class RemoteNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
    {
        var pattern = new WildcardPattern(wordToComplete + "*", WildcardOptions.IgnoreCase);
        return RemoteStore.ListWithLocal().Where(r => pattern.IsMatch(r.Name))
            .Select(r => new CompletionResult(r.Name, r.Name, CompletionResultType.ParameterValue, $"{r.Name} ({r.Address})")).ToList();
    }
}

[Cmdlet(VerbsCommon.Add, "SystemContainerRemote", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerRemote))]
public sealed class AddSystemContainerRemoteCommand : PSCmdlet
{
    private readonly CancellationTokenSource _stop = new();

    [Parameter(Mandatory = true, Position = 0)]
    [ValidatePattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    public string Name { get; set; } = "";

    /// <summary>The token New-SystemContainerTrustToken made on the remote.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    public string Token { get; set; } = "";

    /// <summary>Makes the new remote the default, as Set-SystemContainerRemote -Default does.</summary>
    [Parameter]
    public SwitchParameter Default { get; set; }

    protected override void StopProcessing() => _stop.Cancel();

    protected override void EndProcessing()
    {
        if (!ShouldProcess(Name, "Join the remote with a trust token, pinning its certificate")) return;
        try
        {
            var added = RemoteStore.Add(Name, Token, _stop.Token);
            if (Default) RemoteStore.SetDefault(Name);
            WriteObject(added with { Default = Default });
        }
        catch (SystemContainersApiException e)
        {
            WriteError(SystemContainerCmdlet.ToErrorRecord(e, Name));
        }
    }
}

[Cmdlet(VerbsCommon.Get, "SystemContainerRemote")]
[OutputType(typeof(SystemContainerRemote))]
public sealed class GetSystemContainerRemoteCommand : PSCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        var all = RemoteStore.ListWithLocal();
        if (Name is null || Name.Length == 0)
        {
            WriteObject(all, enumerateCollection: true);
            return;
        }
        foreach (var name in Name)
        {
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            var found = all.Where(r => pattern.IsMatch(r.Name)).ToList();
            if (found.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                WriteError(new ErrorRecord(new ItemNotFoundException($"remote '{name}' not found"), "RemoteNotFound", ErrorCategory.ObjectNotFound, name));
            WriteObject(found, enumerateCollection: true);
        }
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerRemote", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerRemoteCommand : PSCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string[] Name { get; set; } = [];

    /// <summary>Remove without asking.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
        {
            if (name == RemoteStore.Local)
            {
                WriteError(new ErrorRecord(new InvalidOperationException("'local' is this host's daemon and cannot be removed"), "RemoteIsLocal", ErrorCategory.InvalidOperation, name));
                continue;
            }
            if (!RemoteStore.List().Any(r => r.Name == name))
            {
                WriteError(new ErrorRecord(new ItemNotFoundException($"remote '{name}' not found"), "RemoteNotFound", ErrorCategory.ObjectNotFound, name));
                continue;
            }
            bool asked = MyInvocation.BoundParameters.ContainsKey("WhatIf") || MyInvocation.BoundParameters.ContainsKey("Confirm");
            if ((Force && !asked) || ShouldProcess(name, "Forget the remote (the remote still trusts this client until Remove-SystemContainerTrust there)"))
                RemoteStore.Remove(name);
        }
    }
}

[Cmdlet(VerbsCommon.Set, "SystemContainerRemote", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerRemote))]
public sealed class SetSystemContainerRemoteCommand : PSCmdlet
{
    /// <summary>The remote: one Get-SystemContainerRemote lists, or "local".</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>Makes it the remote that cmdlets given no -Remote act on (lxc remote switch).</summary>
    [Parameter(Mandatory = true)]
    public SwitchParameter Default { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (!Default || !ShouldProcess(Name, "Make it the default remote")) return;
        try
        {
            RemoteStore.SetDefault(Name);
        }
        catch (SystemContainersApiException e)
        {
            WriteError(SystemContainerCmdlet.ToErrorRecord(e, Name));
            return;
        }
        if (PassThru) WriteObject(RemoteStore.ListWithLocal().First(r => r.Name == Name));
    }
}
