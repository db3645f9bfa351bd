using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

[Cmdlet(VerbsCommon.New, "SystemContainerTrustToken", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerTrustToken))]
public sealed class NewSystemContainerTrustTokenCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0)]
    public string ClientName { get; set; } = "";

    /// <summary>How long the token can be redeemed; an hour by default.</summary>
    [Parameter]
    [ValidateRange(1, 30 * 24 * 3600)]
    public int ExpiresInSeconds { get; set; } = 3600;

    protected override void EndProcessing()
    {
        if (!ShouldProcess(ClientName, "Make a single-use trust token")) return;
        if (TryCall(c => c.NewTrustTokenAsync(new TrustTokenRequest(ClientName, ExpiresInSeconds), Cancel), ClientName, out var token)) WriteObject(token);
    }
}

[Cmdlet(VerbsCommon.Get, "SystemContainerTrust")]
[OutputType(typeof(SystemContainerTrust))]
public sealed class GetSystemContainerTrustCommand : SystemContainerCmdlet
{
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    protected override void ProcessRecord()
    {
        if (TryCall(c => c.ListTrustAsync(Cancel), null, out var all))
            WriteMatches(all, Name, (t, pattern, name) => pattern.IsMatch(t.Name) || t.Fingerprint == name.ToLowerInvariant(), "TrustNotFound", "trusted client");
    }
}

[Cmdlet(VerbsCommon.Remove, "SystemContainerTrust", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(void))]
public sealed class RemoveSystemContainerTrustCommand : SystemContainerCmdlet
{
    /// <summary>The trusted client's name or its certificate's fingerprint.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Fingerprint")]
    public string[] Name { get; set; } = [];

    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var name in Name)
            if (ShouldRemove(name, "Stop trusting the client and close its open connections", Force))
                TryCall(c => c.RemoveTrustAsync(name, Cancel), name);
    }
}

[Cmdlet(VerbsCommon.Set, "SystemContainerHost", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainerHost))]
public sealed class SetSystemContainerHostCommand : SystemContainerCmdlet
{
    /// <summary>core.https_address: where the daemon listens for HTTPS; "" turns the listener off.</summary>
    [Parameter(Mandatory = true)]
    [AllowEmptyString]
    public string HttpsAddress { get; set; } = "";

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void EndProcessing()
    {
        if (!ShouldProcess("daemon", HttpsAddress.Length == 0 ? "Stop listening on HTTPS" : $"Listen on HTTPS at {HttpsAddress}")) return;
        if (!TryCall(c => c.UpdateHostAsync(new HostUpdateRequest(new() { ["core.https_address"] = HttpsAddress }), Cancel), HttpsAddress, out _)) return;
        if (PassThru && TryCall(c => c.GetHostAsync(Cancel), null, out var host)) WriteObject(host);
    }
}
