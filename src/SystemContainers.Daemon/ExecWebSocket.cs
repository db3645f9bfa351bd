using System.Net.WebSockets;
using System.Text.Json;
using SystemContainers.Api;
using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>
/// The two ends of a one-request exec's websocket that are not the command's streams: its first
/// message, the request, read as strictly as a request body; and a refusal, the error response
/// a POST would have had, as one text message before the close.
/// </summary>
public static class ExecWebSocket
{
    public static async Task<ExecCommandRequest> ReadRequestAsync(WebSocket socket, CancellationToken ct)
    {
        var message = new MemoryStream();
        var buffer = new byte[65536];
        WebSocketReceiveResult r;
        do
        {
            r = await socket.ReceiveAsync(buffer, ct);
            if (r.MessageType != WebSocketMessageType.Text)
                throw EngineException.Invalid("InvalidRequest", "the exec websocket's first message must be the request, as JSON text");
            message.Write(buffer, 0, r.Count);
            if (message.Length > RestApi.MaxBodyBytes)
                throw EngineException.Invalid("RequestTooLarge", $"the exec request is larger than {RestApi.MaxBodyBytes} bytes");
        }
        while (!r.EndOfMessage);
        try
        {
            return JsonSerializer.Deserialize<ExecCommandRequest>(message.GetBuffer().AsSpan(0, (int)message.Length), RestApi.RequestJson)
                ?? throw EngineException.Invalid("InvalidRequest", "the exec request must be a JSON object");
        }
        catch (JsonException e)
        {
            throw EngineException.Invalid("InvalidRequest", $"the exec request is not valid: {e.Message}");
        }
    }

    public static async Task RefuseAsync(WebSocket socket, Exception e)
    {
        var (status, id) = ErrorMapping.Classify(e);
        var response = new ApiResponse("error", ErrorCode: status, Error: e.Message, ErrorId: id);
        try
        {
            await socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(response, Wire.Json), WebSocketMessageType.Text, true, CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.PolicyViolation, "refused", CancellationToken.None);
        }
        catch (WebSocketException) { }
    }
}
