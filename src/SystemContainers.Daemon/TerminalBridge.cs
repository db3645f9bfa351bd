using System.Net.WebSockets;
using System.Text.Json;
using SystemContainers.Api;
using SystemContainers.Engine.Runtime;

namespace SystemContainers.Daemon;

/// <summary>Joins an interactive exec's pty to a websocket: binary frames carry bytes, text frames carry resize requests.</summary>
public static class TerminalBridge
{
    public static async Task RunAsync(WebSocket socket, ExecSession session, CancellationToken ct)
    {
        var terminal = session.Terminal!;
        var drain = new OutputDrain();
        var output = Task.Run(async () =>
        {
            var buffer = new byte[16384];
            try
            {
                int n;
                while ((n = await drain.ReadAsync(() => terminal.ReadAsync(buffer, ct))) > 0)
                    await socket.SendAsync(buffer.AsMemory(0, n), WebSocketMessageType.Binary, true, ct);
            }
            catch (Exception e) when (e is IOException or WebSocketException) { }
        }, ct);
        var input = Task.Run(async () =>
        {
            var buffer = new byte[16384];
            try
            {
                while (socket.State == WebSocketState.Open)
                {
                    var r = await socket.ReceiveAsync(buffer, ct);
                    if (r.MessageType == WebSocketMessageType.Close) break;
                    if (r.MessageType == WebSocketMessageType.Binary) await terminal.WriteAsync(buffer.AsMemory(0, r.Count), ct);
                    else if (JsonSerializer.Deserialize<ExecControl>(buffer.AsSpan(0, r.Count), Wire.Json) is { Command: "window-resize" } c)
                        session.Resize((ushort)c.Width, (ushort)c.Height);
                }
            }
            catch (Exception e) when (e is WebSocketException or IOException or JsonException) { }
        }, ct);
        var (code, _) = await session.Completion;
        await drain.WaitAsync(output, readerCount: 1);
        if (socket.State == WebSocketState.Open)
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, ExecControl.ExitReason(code), CancellationToken.None);
        await Task.WhenAny(input, Task.Delay(1000));
    }
}
