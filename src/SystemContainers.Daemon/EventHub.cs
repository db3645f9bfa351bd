using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Containers;

namespace SystemContainers.Daemon;

/// <summary>
/// Fans lifecycle and operation events out to every /1.0/events websocket, and keeps the last
/// <see cref="RecentCount"/> for /1.0/events/recent. Ids rise by one per event, so a client that
/// reads the recent ones after subscribing can drop what it got twice.
/// </summary>
public sealed class EventHub
{
    public const int RecentCount = 1000;
    private readonly ConcurrentDictionary<Guid, Channel<EventMessage>> _subscribers = new();
    private readonly Queue<EventMessage> _recent = new();
    private long _lastId;

    public EventHub(ContainerService containers, OperationRegistry operations)
    {
        containers.Events += e => PublishLifecycle(e.Action, $"/1.0/containers/{e.Source}", new { action = e.Action, source = $"/1.0/containers/{e.Source}", context = e.Context });
        operations.Changed += op => Publish("operation", op.ToApi());
    }

    /// <summary>A lifecycle event about something other than a container (a network).</summary>
    public void Lifecycle(string action, string source) =>
        PublishLifecycle(action, source, new { action, source });

    private void PublishLifecycle(string action, string source, object metadata)
    {
        // The log keeps what the daemon did, beside the failures it logs.
        DaemonLog.Info($"{action} {source}");
        Publish("lifecycle", metadata);
    }

    /// <summary>The kept events of the given types (all types when empty), oldest first.</summary>
    public IReadOnlyList<EventMessage> Recent(IReadOnlySet<string> types)
    {
        lock (_recent) return [.. _recent.Where(m => types.Count == 0 || types.Contains(m.Type))];
    }

    private void Publish(string type, object metadata)
    {
        var element = JsonSerializer.SerializeToElement(metadata, Wire.Json);
        EventMessage message;
        // One lock orders the ids, the kept queue and the fan-out alike.
        lock (_recent)
        {
            message = new EventMessage(type, DateTimeOffset.UtcNow, element, ++_lastId);
            _recent.Enqueue(message);
            if (_recent.Count > RecentCount) _recent.Dequeue();
            foreach (var channel in _subscribers.Values) channel.Writer.TryWrite(message);
        }
    }

    /// <summary>
    /// Subscribes, then accepts the websocket: an event published once the client has its 101
    /// answer (a create it sends right after) is never missed.
    /// </summary>
    public async Task StreamAsync(Func<Task<WebSocket>> accept, IReadOnlySet<string> types, CancellationToken ct)
    {
        var id = Guid.NewGuid();
        var channel = Channel.CreateBounded<EventMessage>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
        _subscribers[id] = channel;
        WebSocket socket;
        try
        {
            socket = await accept();
        }
        catch
        {
            _subscribers.TryRemove(id, out _);
            throw;
        }
        using var owned = socket;
        try
        {
            // The reader notices the client closing; the writer sends events until then. The read
            // is not cancelled with ct: that would abort the socket before the close frame below.
            var closed = socket.ReceiveAsync(new byte[64], CancellationToken.None);
            while (!ct.IsCancellationRequested)
            {
                var next = channel.Reader.ReadAsync(ct).AsTask();
                if (await Task.WhenAny(next, closed) == closed) break;
                var message = await next;
                if (types.Count > 0 && !types.Contains(message.Type)) continue;
                await socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(message, Wire.Json), WebSocketMessageType.Text, true, ct);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException) { }
        finally
        {
            _subscribers.TryRemove(id, out _);
        }
        // The daemon is stopping: the client is told so, briefly, rather than left hanging.
        if (ct.IsCancellationRequested && socket.State == WebSocketState.Open)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try { await socket.CloseOutputAsync(WebSocketCloseStatus.EndpointUnavailable, "daemon stopping", timeout.Token); }
            catch (Exception e) when (e is OperationCanceledException or WebSocketException) { }
        }
    }
}
