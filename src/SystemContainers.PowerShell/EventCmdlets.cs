using System.Net.WebSockets;
using System.Management.Automation;
using System.Text.Json;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

[Cmdlet(VerbsCommon.Get, "SystemContainerEvent")]
[OutputType(typeof(SystemContainerEvent))]
public sealed class GetSystemContainerEventCommand : SystemContainerCmdlet
{
    /// <summary>Only events about these resources (container or network names), wildcards allowed.</summary>
    [Parameter(Position = 0)]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>lifecycle (a container or network made, started, stopped, ...) or operation (a long task's progress).</summary>
    [Parameter]
    [ValidateSet("lifecycle", "operation")]
    public string[] Type { get; set; } = [];

    /// <summary>After the kept events, write each new one as it happens, until Ctrl+C or -Timeout.</summary>
    [Parameter]
    public SwitchParameter Follow { get; set; }

    /// <summary>With -Follow: stop after this many seconds.</summary>
    [Parameter]
    [ValidateRange(0.1, 31_536_000)]
    public double? Timeout { get; set; }

    protected override void EndProcessing()
    {
        var patterns = (Name ?? []).Select(n => new WildcardPattern(n, WildcardOptions.IgnoreCase)).ToList();
        // Subscribed before the kept events are read, so nothing between them is missed; ids drop doubles.
        ClientWebSocket? socket = null;
        if (Follow && !TryCall(c => c.SubscribeEventsAsync(Type, Cancel), null, out socket)) return;
        using (socket)
        {
            if (!TryCall(c => c.GetRecentEventsAsync(Type, Cancel), null, out var recent)) return;
            long last = 0;
            foreach (var message in recent)
            {
                Write(message, patterns);
                last = message.Id;
            }
            if (socket is null) return;
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
            if (Timeout is double seconds) deadline.CancelAfter(TimeSpan.FromSeconds(seconds));
            foreach (var message in Receive(socket, deadline.Token))
                if (message.Id > last) Write(message, patterns);
        }
    }

    private IEnumerable<EventMessage> Receive(ClientWebSocket socket, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        using var text = new MemoryStream();
        for (;;)
        {
            WebSocketReceiveResult result;
            try
            {
                result = socket.ReceiveAsync(buffer, ct).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException) when (Cancel.IsCancellationRequested)
            {
                throw new PipelineStoppedException();
            }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException)
            {
                yield break;
            }
            if (result.MessageType == WebSocketMessageType.Close) yield break;
            text.Write(buffer, 0, result.Count);
            if (!result.EndOfMessage) continue;
            var message = JsonSerializer.Deserialize<EventMessage>(text.GetBuffer().AsSpan(0, (int)text.Length), Wire.Json);
            text.SetLength(0);
            if (message is not null) yield return message;
        }
    }

    private void Write(EventMessage message, List<WildcardPattern> patterns)
    {
        var shown = ToEvent(message);
        if (patterns.Count == 0 || patterns.Any(p => p.IsMatch(shown.Name))) WriteObject(shown);
    }

    internal static SystemContainerEvent ToEvent(EventMessage m)
    {
        var meta = m.Metadata;
        if (m.Type == "operation")
        {
            var op = meta.Deserialize<Operation>(Wire.Json);
            string source = op?.Resources.Values.SelectMany(r => r).FirstOrDefault() ?? "";
            return new SystemContainerEvent
            {
                Id = m.Id, Type = m.Type, Timestamp = m.Timestamp, Action = op?.Status ?? "", Source = source,
                Name = LastSegment(source), Operation = op, Metadata = meta,
            };
        }
        string action = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("action", out var a) ? a.GetString() ?? "" : "";
        string src = meta.ValueKind == JsonValueKind.Object && meta.TryGetProperty("source", out var s) ? s.GetString() ?? "" : "";
        return new SystemContainerEvent
        {
            Id = m.Id, Type = m.Type, Timestamp = m.Timestamp, Action = action, Source = src, Name = LastSegment(src), Metadata = meta,
        };
    }

    private static string LastSegment(string path) => Uri.UnescapeDataString(path[(path.LastIndexOf('/') + 1)..]);
}
