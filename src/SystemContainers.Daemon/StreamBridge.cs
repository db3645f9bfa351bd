using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using SystemContainers.Api;
using SystemContainers.Engine;
using SystemContainers.Engine.Runtime;

namespace SystemContainers.Daemon;

/// <summary>
/// Joins a streamed (non-interactive) exec's pipes to a websocket. Output goes out as it is made,
/// one frame per read, each behind its stream byte; a read waits for the send before it, so a
/// slow client slows the command (the pipe fills) instead of growing the daemon's memory.
/// Why a command could not start goes out as its last stderr, and the exit code in the close
/// frame, unless the operation was cancelled (the client then asks the operation).
/// </summary>
public static class StreamBridge
{
    private const int FrameSize = 65536;

    public static async Task RunAsync(WebSocket socket, ExecSession session, CancellationToken cancelled, CancellationToken ct)
    {
        using var sending = new SemaphoreSlim(1, 1);
        var drain = new OutputDrain();
        async Task Pump(Stream from, byte stream)
        {
            var buffer = new byte[FrameSize + 1];
            buffer[0] = stream;
            try
            {
                int n;
                while ((n = await drain.ReadAsync(() => from.ReadAsync(buffer.AsMemory(1, FrameSize), ct))) > 0)
                {
                    await sending.WaitAsync(ct);
                    try { await socket.SendAsync(buffer.AsMemory(0, n + 1), WebSocketMessageType.Binary, true, ct); }
                    finally { sending.Release(); }
                }
            }
            catch (Exception e) when (e is IOException or WebSocketException or OperationCanceledException) { }
        }
        var output = Task.WhenAll(Pump(session.Stdout!, ExecControl.StdoutStream), Pump(session.Stderr!, ExecControl.StderrStream));
        var input = Task.Run(async () =>
        {
            var buffer = new byte[FrameSize];
            try
            {
                while (socket.State == WebSocketState.Open)
                {
                    var r = await socket.ReceiveAsync(buffer, ct);
                    if (r.MessageType == WebSocketMessageType.Close) break;
                    if (r.MessageType == WebSocketMessageType.Binary) await session.Stdin!.WriteAsync(buffer.AsMemory(0, r.Count), ct);
                    else if (JsonSerializer.Deserialize<ExecControl>(buffer.AsSpan(0, r.Count), Wire.Json) is { } c)
                    {
                        if (c.Command == "close-stdin") session.Stdin!.Dispose();
                        else if (c.Command == "signal" && c.Signal is > 0 and < 65) await session.SignalAsync(c.Signal);
                    }
                }
            }
            catch (Exception e) when (e is WebSocketException or IOException or JsonException or ObjectDisposedException or OperationCanceledException) { }
            // A client that goes away ends the command: nobody is left to read what it writes.
            if (socket.State != WebSocketState.Open && !session.Completion.IsCompleted) await session.CancelAsync();
        }, ct);
        var (code, error) = await session.Completion;
        await drain.WaitAsync(output, readerCount: 2);
        StepTrace.Mark("exec: output forwarded");
        if (socket.State == WebSocketState.Open)
        {
            await sending.WaitAsync(CancellationToken.None);
            try
            {
                if (error is not null)
                    await socket.SendAsync((byte[])[ExecControl.StderrStream, .. Encoding.UTF8.GetBytes(error + "\n")], WebSocketMessageType.Binary, true, CancellationToken.None);
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, cancelled.IsCancellationRequested ? "cancelled" : ExecControl.ExitReason(code), CancellationToken.None);
            }
            catch (WebSocketException) { }
            finally { sending.Release(); }
        }
        await Task.WhenAny(input, Task.Delay(1000));
    }
}
