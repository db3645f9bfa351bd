using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

[Cmdlet(VerbsCommon.Get, "ContainerStats", DefaultParameterSetName = "Name")]
[OutputType(typeof(SystemContainerStats))]
public sealed class GetContainerStatsCommand : SystemContainerCmdlet
{
    private readonly List<string> _names = [];

    /// <summary>Containers to sample, wildcards allowed; without names, every container.</summary>
    [Parameter(Position = 0, ParameterSetName = "Name", ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[]? Name { get; set; }

    /// <summary>Every container (the same as giving no name).</summary>
    [Parameter(Mandatory = true, ParameterSetName = "All")]
    public SwitchParameter All { get; set; }

    /// <summary>Seconds between samples when streaming (with -Count or -Continuous); default 1.</summary>
    [Parameter]
    [ValidateRange(0.1, 86400)]
    public double Interval { get; set; } = 1;

    /// <summary>How many samples to take of each container.</summary>
    [Parameter]
    [ValidateRange(1, int.MaxValue)]
    public int? Count { get; set; }

    /// <summary>Sample until stopped with Ctrl+C.</summary>
    [Parameter]
    public SwitchParameter Continuous { get; set; }

    // Names are collected first so one request per sample serves the whole pipeline.
    protected override void ProcessRecord() => _names.AddRange(Name ?? []);

    protected override void EndProcessing()
    {
        bool streaming = Continuous || Count.HasValue || MyInvocation.BoundParameters.ContainsKey(nameof(Interval));
        int samples = Continuous ? int.MaxValue : Count ?? 1;
        // A first sample sets each container's CPU baseline, so every sample shown covers one interval.
        if (streaming && Sample(write: false)) Wait();
        for (int i = 0; i < samples; i++)
        {
            if (!Sample(write: true)) return;
            if (i + 1 < samples) Wait();
        }
    }

    private void Wait()
    {
        if (Cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(Interval))) throw new PipelineStoppedException();
    }

    private bool Sample(bool write)
    {
        bool every = All || _names.Count == 0;
        bool literalOnly = !every && _names.All(n => !WildcardPattern.ContainsWildcardCharacters(n));
        if (literalOnly)
        {
            foreach (var name in _names)
                if (TryCall(c => c.GetStatsAsync(name, Cancel), name, out var one) && write) WriteObject(one);
            return true;
        }
        if (!TryCall(c => c.ListStatsAsync(Cancel), null, out var all)) return false;
        var patterns = _names.Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
        if (write) WriteObject(all.Where(s => every || patterns.Any(p => p.IsMatch(s.Name))), enumerateCollection: true);
        return true;
    }
}
