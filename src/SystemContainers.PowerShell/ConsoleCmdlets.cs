using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

[Cmdlet(VerbsCommon.Get, "SystemContainerLog")]
[OutputType(typeof(string))]
public sealed class GetSystemContainerLogCommand : SystemContainerCmdlet
{
    /// <summary>The container whose console log to read.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>Only the last this many lines of what is logged so far.</summary>
    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int? Tail { get; set; }

    /// <summary>Then write each new line as the container prints it, until Ctrl+C or -Timeout.</summary>
    [Parameter]
    public SwitchParameter Follow { get; set; }

    /// <summary>With -Follow: stop after this many seconds.</summary>
    [Parameter]
    [ValidateRange(0.1, 31_536_000)]
    public double? Timeout { get; set; }

    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(250);

    protected override void ProcessRecord()
    {
        if (!TryCall(c => c.GetConsoleLogAsync(Name, 0, Cancel), Name, out var first)) return;
        var lines = Lines(first.Text, out string partial);
        if (!Follow && partial.Length > 0) lines.Add(partial);
        WriteObject(Tail is int n ? lines.TakeLast(n) : lines, enumerateCollection: true);
        if (!Follow) return;
        var until = Timeout is double s ? DateTime.UtcNow.AddSeconds(s) : DateTime.MaxValue;
        long next = first.Next;
        while (DateTime.UtcNow < until)
        {
            if (Cancel.WaitHandle.WaitOne(PollInterval)) throw new PipelineStoppedException();
            if (!TryCall(c => c.GetConsoleLogAsync(Name, next, Cancel), Name, out var chunk)) return;
            if (chunk.Restarted) partial = "";
            WriteObject(Lines(partial + chunk.Text, out partial), enumerateCollection: true);
            next = chunk.Next;
        }
        if (partial.Length > 0) WriteObject(partial);
    }

    /// <summary>The whole lines of text (without \r\n); what follows the last newline is kept for the next read.</summary>
    private static List<string> Lines(string text, out string partial)
    {
        var parts = text.Split('\n');
        partial = parts[^1];
        return [.. parts[..^1].Select(l => l.TrimEnd('\r'))];
    }
}
