using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text.Json;

namespace SystemContainers.Api;

/// <summary>An API error: the HTTP status, the daemon's stable error id and its message.</summary>
public sealed class SystemContainersApiException(int statusCode, string errorId, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
    public string ErrorId { get; } = errorId;
}

/// <summary>Typed REST client for systemcontainerd over its unix socket or, to a remote, mutual TLS. One instance keeps its connections alive.</summary>
public sealed partial class SystemContainersClient : IDisposable
{
    private readonly Uri _base;
    private readonly Uri _webSocketBase;
    private readonly SocketsHttpHandler _handler;
    private readonly HttpClient _http;

    /// <summary>A client for the daemon on socketPath; remoteName, when given, is what the objects it returns carry.</summary>
    public SystemContainersClient(string socketPath, string? remoteName = null)
    {
        SocketPath = socketPath;
        RemoteName = remoteName;
        Target = socketPath;
        _base = new Uri("http://systemcontainers/");
        _webSocketBase = new Uri("ws://systemcontainers/");
        _handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        };
        _http = new HttpClient(_handler, disposeHandler: false) { BaseAddress = _base, Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>The unix socket; "" for a remote.</summary>
    public string SocketPath { get; }

    /// <summary>Where requests go, for messages: the socket path or the remote's https:// address.</summary>
    public string Target { get; }

    /// <summary>True when a daemon answers on the socket.</summary>
    public async Task<bool> PingAsync(CancellationToken ct = default)
    {
        if (SocketPath.Length > 0 && !File.Exists(SocketPath)) return false;
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(5));
            using var r = await _http.GetAsync("1.0", cts.Token);
            return r.IsSuccessStatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or SocketException or OperationCanceledException or IOException)
        {
            return false;
        }
    }

    public Task<SystemContainerHost> GetHostAsync(CancellationToken ct = default) =>
        SendAsync<SystemContainerHost>(HttpMethod.Get, "1.0", null, ct);

    /// <summary>The console log from byte offset on (see <see cref="ConsoleLogChunk"/>).</summary>
    public Task<ConsoleLogChunk> GetConsoleLogAsync(string name, long offset, CancellationToken ct = default) =>
        SendAsync<ConsoleLogChunk>(HttpMethod.Get, $"1.0/containers/{Esc(name)}/console?from={offset}", null, ct);

    /// <summary>The events the daemon kept (its last thousand), oldest first; types empty for all.</summary>
    public Task<List<EventMessage>> GetRecentEventsAsync(IEnumerable<string> types, CancellationToken ct = default) =>
        SendAsync<List<EventMessage>>(HttpMethod.Get, $"1.0/events/recent?type={Esc(string.Join(',', types))}", null, ct);

    /// <summary>Subscribes to /1.0/events: each text message is one <see cref="EventMessage"/>.</summary>
    public async Task<ClientWebSocket> SubscribeEventsAsync(IEnumerable<string> types, CancellationToken ct = default)
    {
        return await ConnectWebSocketAsync($"1.0/events?type={Esc(string.Join(',', types))}", ct);
    }

    public Task<List<SystemContainer>> ListContainersAsync(CancellationToken ct = default) =>
        SendAsync<List<SystemContainer>>(HttpMethod.Get, "1.0/containers?recursion=1", null, ct);

    public Task<SystemContainer> GetContainerAsync(string name, CancellationToken ct = default) =>
        SendAsync<SystemContainer>(HttpMethod.Get, $"1.0/containers/{Esc(name)}", null, ct);

    public Task<SystemContainer> CreateContainerAsync(ContainerCreateRequest request, CancellationToken ct = default) =>
        SendAsync<SystemContainer>(HttpMethod.Post, "1.0/containers", request, ct);

    /// <summary>A new container name, a copy of source or of its snapshot, in its pool or in storagePool.</summary>
    public Task<SystemContainer> CopyContainerAsync(string source, string? snapshot, string name, string? storagePool, bool instanceOnly = false,
        CancellationToken ct = default) =>
        SendAsync<SystemContainer>(HttpMethod.Post, "1.0/containers",
            new ContainerCreateRequest(name, null, StoragePool: storagePool,
                Source: new ContainerSource("copy", snapshot is null ? source : $"{source}/{snapshot}", InstanceOnly: instanceOnly)), ct);

    /// <summary>
    /// Has this daemon pull a container from another daemon's migration operation (see
    /// CreateMigrationSourceAsync), over TLS 1.3 to operation's host, whose server certificate has
    /// the SHA-256 certificate; move keeps its MACs. Nothing of the container passes through this client.
    /// </summary>
    public Task<SystemContainer> PullContainerAsync(string name, string? storagePool, string operation, string certificate, string secret, bool move,
        Action<string>? progress = null, CancellationToken ct = default, bool live = false) =>
        SendAsync<SystemContainer>(HttpMethod.Post, "1.0/containers",
            new ContainerCreateRequest(name, null, StoragePool: storagePool,
                Source: new ContainerSource("migration", Mode: "pull", Operation: operation, Certificate: certificate, Secrets: new() { ["fs"] = secret }, Move: move,
                    Live: live)),
            ct, progress);

    public Task<SystemContainer> ChangeStateAsync(string name, ContainerStateRequest request, CancellationToken ct = default) =>
        SendAsync<SystemContainer>(HttpMethod.Put, $"1.0/containers/{Esc(name)}/state", request, ct);

    /// <summary>One state action on many containers in one request; every name answers with its container or its error.</summary>
    public Task<List<ContainerBulkResult>> ChangeStatesAsync(ContainerBulkStateRequest request, CancellationToken ct = default) =>
        SendAsync<List<ContainerBulkResult>>(HttpMethod.Put, "1.0/containers/state", request, ct);

    /// <summary>Many containers removed in one request; every name answers with nothing or its error.</summary>
    public Task<List<ContainerBulkResult>> DeleteContainersAsync(ContainerBulkDeleteRequest request, CancellationToken ct = default) =>
        SendAsync<List<ContainerBulkResult>>(HttpMethod.Delete, "1.0/containers", request, ct);

    public Task<SystemContainer> UpdateContainerAsync(string name, ContainerUpdateRequest request, CancellationToken ct = default) =>
        SendAsync<SystemContainer>(HttpMethod.Patch, $"1.0/containers/{Esc(name)}", request, ct);

    public Task<SystemContainer> RenameContainerAsync(string name, string newName, CancellationToken ct = default) =>
        SendAsync<SystemContainer>(HttpMethod.Post, $"1.0/containers/{Esc(name)}", new ContainerPostRequest(newName), ct);

    public Task<SystemContainerStats> GetStatsAsync(string name, CancellationToken ct = default) =>
        SendAsync<SystemContainerStats>(HttpMethod.Get, $"1.0/containers/{Esc(name)}/state", null, ct);

    /// <summary>Every container's stats in one request.</summary>
    public Task<List<SystemContainerStats>> ListStatsAsync(CancellationToken ct = default) =>
        SendAsync<List<SystemContainerStats>>(HttpMethod.Get, "1.0/containers?recursion=2", null, ct);

    public Task DeleteContainerAsync(string name, bool force, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Delete, $"1.0/containers/{Esc(name)}?force={(force ? 1 : 0)}", null, ct);

    public Task<ExecCommandResult> ExecAsync(string name, ExecCommandRequest request, CancellationToken ct = default) =>
        SendAsync<ExecCommandResult>(HttpMethod.Post, $"1.0/containers/{Esc(name)}/exec", request with { Interactive = false }, ct);

    /// <summary>Starts an interactive command on a pty; returns the operation id and its connected websocket.</summary>
    public Task<(string OperationId, ClientWebSocket Socket)> ExecInteractiveAsync(string name, ExecCommandRequest request, CancellationToken ct = default) =>
        ExecAttachedAsync(name, request with { Interactive = true, Stream = false }, ct);

    /// <summary>
    /// Starts a command on pipes whose stdin, stdout and stderr travel over the returned websocket
    /// as the command reads and writes them (see <see cref="ExecControl"/>), in one request: the
    /// request is the websocket's first message, and a refusal comes back on it as a text message
    /// (<see cref="RefusalOf"/>). Closing the websocket ends the command.
    /// </summary>
    public async Task<ClientWebSocket> ExecStreamAsync(string name, ExecCommandRequest request, CancellationToken ct = default)
    {
        ClientWebSocket? socket = null;
        try
        {
            socket = await ConnectWebSocketAsync($"1.0/containers/{Esc(name)}/exec", ct);
            await socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(request with { Interactive = false, Stream = true }, Wire.Json), WebSocketMessageType.Text, true, ct);
            return socket;
        }
        catch (WebSocketException e)
        {
            socket?.Dispose();
            throw new SystemContainersApiException(503, "DaemonUnreachable", $"cannot open an exec websocket to systemcontainerd at {Target}: {e.Message}");
        }
        catch
        {
            socket?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A websocket on the client's own handler. To a remote it asks for HTTP/2 (RFC 8441), so it is
    /// one more stream on the pooled TLS connection rather than a connection of its own: an
    /// HTTP/1.1 upgrade would take the pooled connection for good and the next request would pay a
    /// new TLS handshake.
    /// </summary>
    private async Task<ClientWebSocket> ConnectWebSocketAsync(string path, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        if (SocketPath.Length == 0)
        {
            socket.Options.HttpVersion = HttpVersion.Version20;
            socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }
        try
        {
            await socket.ConnectAsync(new Uri(_webSocketBase, path), new HttpMessageInvoker(_handler, disposeHandler: false), ct);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The error a one-request exec's daemon sent as a text message instead of running the command.</summary>
    public static SystemContainersApiException RefusalOf(ReadOnlySpan<byte> message)
    {
        ApiResponse? response;
        try
        {
            response = JsonSerializer.Deserialize<ApiResponse>(message, Wire.Json);
        }
        catch (JsonException)
        {
            response = null;
        }
        return response is { Type: "error" }
            ? new SystemContainersApiException(response.ErrorCode, response.ErrorId ?? "Error", response.Error ?? "unknown error")
            : new SystemContainersApiException(500, "BadResponse", "the exec websocket sent a text message that is not an error response");
    }

    public Task CancelOperationAsync(string id, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Delete, $"1.0/operations/{Esc(id)}", null, ct);

    private async Task<(string OperationId, ClientWebSocket Socket)> ExecAttachedAsync(string name, ExecCommandRequest request, CancellationToken ct)
    {
        var response = await SendRawAsync(HttpMethod.Post, $"1.0/containers/{Esc(name)}/exec", request, ct);
        var op = Deserialize<Operation>(response.Metadata);
        var meta = Deserialize<ExecInteractiveMetadata>(op.Metadata);
        return (op.Id, await ConnectWebSocketAsync($"1.0/operations/{op.Id}/websocket?secret={Uri.EscapeDataString(meta.Secret)}", ct));
    }

    public Task<List<SystemContainerImage>> ListImagesAsync(CancellationToken ct = default) =>
        SendAsync<List<SystemContainerImage>>(HttpMethod.Get, "1.0/images?recursion=1", null, ct);

    public Task<SystemContainerImage> GetImageAsync(string reference, CancellationToken ct = default) =>
        SendAsync<SystemContainerImage>(HttpMethod.Get, $"1.0/images/{Esc(reference)}", null, ct);

    public Task<SystemContainerImage> CreateImageAsync(ImageCreateRequest request, Action<string>? progress = null, CancellationToken ct = default) =>
        SendAsync<SystemContainerImage>(HttpMethod.Post, "1.0/images", request, ct, progress);

    public Task<SystemContainerImage> AddImageAliasAsync(string target, string alias, CancellationToken ct = default) =>
        SendAsync<SystemContainerImage>(HttpMethod.Post, "1.0/images/aliases", new ImageAliasRequest(alias, target), ct);

    public Task<SystemContainerImage> RemoveImageAliasAsync(string alias, CancellationToken ct = default) =>
        SendAsync<SystemContainerImage>(HttpMethod.Delete, $"1.0/images/aliases/{Esc(alias)}", null, ct);

    public Task DeleteImageAsync(string reference, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Delete, $"1.0/images/{Esc(reference)}", null, ct);

    public async Task<List<SystemContainerNetwork>> ListNetworksAsync(CancellationToken ct = default) =>
        [.. (await SendAsync<List<SystemContainerNetwork>>(HttpMethod.Get, "1.0/networks?recursion=1", null, ct)).Select(WithNames)];

    public async Task<SystemContainerNetwork> CreateNetworkAsync(NetworkCreateRequest request, CancellationToken ct = default) =>
        WithNames(await SendAsync<SystemContainerNetwork>(HttpMethod.Post, "1.0/networks", request, ct));

    public async Task<SystemContainerNetwork> UpdateNetworkAsync(string name, NetworkUpdateRequest request, CancellationToken ct = default) =>
        WithNames(await SendAsync<SystemContainerNetwork>(HttpMethod.Patch, $"1.0/networks/{Esc(name)}", request, ct));

    /// <summary>The wire's used_by holds LXD's resource URLs; the typed network holds the containers' names.</summary>
    private static SystemContainerNetwork WithNames(SystemContainerNetwork n) =>
        n with { UsedBy = ContainerNames(n.UsedBy) };

    private static TextList ContainerNames(TextList urls) =>
        [.. urls.Select(u => u.StartsWith(ContainerUrl, StringComparison.Ordinal) ? Uri.UnescapeDataString(u[ContainerUrl.Length..]) : u)];

    private const string ContainerUrl = "/1.0/containers/";

    public Task<List<SystemContainerSnapshot>> ListSnapshotsAsync(string container, CancellationToken ct = default) =>
        SendAsync<List<SystemContainerSnapshot>>(HttpMethod.Get, $"1.0/containers/{Esc(container)}/snapshots?recursion=1", null, ct);

    public Task<SystemContainerSnapshot> CreateSnapshotAsync(string container, SnapshotCreateRequest request, CancellationToken ct = default) =>
        SendAsync<SystemContainerSnapshot>(HttpMethod.Post, $"1.0/containers/{Esc(container)}/snapshots", request, ct);

    public Task<SystemContainer> RestoreSnapshotAsync(string container, string snapshot, CancellationToken ct = default, bool stateful = false) =>
        SendAsync<SystemContainer>(HttpMethod.Post, $"1.0/containers/{Esc(container)}/snapshots/{Esc(snapshot)}/restore", new SnapshotRestoreRequest(stateful), ct);

    public Task<SystemContainerSnapshot> RenameSnapshotAsync(string container, string snapshot, string newName, CancellationToken ct = default) =>
        SendAsync<SystemContainerSnapshot>(HttpMethod.Post, $"1.0/containers/{Esc(container)}/snapshots/{Esc(snapshot)}", new SnapshotRenameRequest(newName), ct);

    public Task DeleteSnapshotAsync(string container, string snapshot, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Delete, $"1.0/containers/{Esc(container)}/snapshots/{Esc(snapshot)}", null, ct);

    public async Task<List<SystemContainerStoragePool>> ListStoragePoolsAsync(CancellationToken ct = default) =>
        [.. (await SendAsync<List<SystemContainerStoragePool>>(HttpMethod.Get, "1.0/storage-pools?recursion=1", null, ct)).Select(WithNames)];

    public async Task<SystemContainerStoragePool> GetStoragePoolAsync(string name, CancellationToken ct = default) =>
        WithNames(await SendAsync<SystemContainerStoragePool>(HttpMethod.Get, $"1.0/storage-pools/{Esc(name)}", null, ct));

    public async Task<SystemContainerStoragePool> CreateStoragePoolAsync(StoragePoolCreateRequest request, CancellationToken ct = default) =>
        WithNames(await SendAsync<SystemContainerStoragePool>(HttpMethod.Post, "1.0/storage-pools", request, ct));

    public async Task<SystemContainerStoragePool> UpdateStoragePoolAsync(string name, StoragePoolUpdateRequest request, CancellationToken ct = default) =>
        WithNames(await SendAsync<SystemContainerStoragePool>(HttpMethod.Patch, $"1.0/storage-pools/{Esc(name)}", request, ct));

    public Task DeleteStoragePoolAsync(string name, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Delete, $"1.0/storage-pools/{Esc(name)}", null, ct);

    private static SystemContainerStoragePool WithNames(SystemContainerStoragePool p) => p with { UsedBy = ContainerNames(p.UsedBy) };

    public Task DeleteNetworkAsync(string name, CancellationToken ct = default) =>
        SendAsync<JsonElement?>(HttpMethod.Delete, $"1.0/networks/{Esc(name)}", null, ct);

    public Task<List<SystemContainerNetworkLease>> ListLeasesAsync(string name, CancellationToken ct = default) =>
        SendAsync<List<SystemContainerNetworkLease>>(HttpMethod.Get, $"1.0/networks/{Esc(name)}/leases", null, ct);

    /// <summary>The host's facts, judged for this many containers (null: the daemon's default).</summary>
    public Task<List<SystemContainerHostCheck>> GetHostChecksAsync(int? containers, CancellationToken ct = default) =>
        SendAsync<List<SystemContainerHostCheck>>(HttpMethod.Get, containers is int n ? $"1.0/host/checks?containers={n}" : "1.0/host/checks", null, ct);

    public Task<HostFixResult> FixHostAsync(HostFixRequest request, CancellationToken ct = default) =>
        SendAsync<HostFixResult>(HttpMethod.Post, "1.0/host/checks/fix", request, ct);

    public Task<Operation> WaitOperationAsync(string id, int timeoutSeconds, CancellationToken ct = default) =>
        SendAsync<Operation>(HttpMethod.Get, $"1.0/operations/{Esc(id)}/wait?timeout={timeoutSeconds}", null, ct);

    private static string Esc(string s) => Uri.EscapeDataString(s);

    /// <summary>
    /// Sends a request; an async response is waited for (reporting its progress) and its result
    /// returned. The request itself asks the daemon to wait (?wait=), so a quick operation ends
    /// in one round trip; short waits while progress is wanted, so it can be shown as it changes.
    /// </summary>
    private async Task<T> SendAsync<T>(HttpMethod method, string path, object? body, CancellationToken ct, Action<string>? progress = null)
    {
        int wait = progress is null ? 3600 : 1;
        var response = await SendRawAsync(method, method == HttpMethod.Get ? path : $"{path}{(path.Contains('?') ? '&' : '?')}wait={wait}", body, ct);
        if (response.Type != "async") return Deserialize<T>(response.Metadata);
        for (var done = Deserialize<Operation>(response.Metadata); ; done = await WaitOperationAsync(done.Id, wait, ct))
        {
            if (done.Status == "Success") return Deserialize<T>(ResultOf(done));
            if (done.Status == "Failure" || done.Status == "Cancelled")
                throw new SystemContainersApiException(done.StatusCode, done.ErrId ?? "OperationFailed", done.Err ?? $"operation {done.Id} failed");
            if (progress is not null && done.Metadata is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty("progress", out var p))
                progress(p.GetString() ?? "");
        }
    }

    private static JsonElement? ResultOf(Operation op) =>
        op.Metadata is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty("result", out var r) ? r : null;

    private async Task<ApiResponse> SendRawAsync(HttpMethod method, string path, object? body, CancellationToken ct, HttpContent? content = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null) request.Content = JsonContent.Create(body, body.GetType(), options: Wire.Json);
        if (content is not null) request.Content = content;
        using var http = await TransmitAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        return await ResponseOf(http, method, path, ct);
    }

    /// <summary>Sends a request; a daemon that cannot be reached is a 503 DaemonUnreachable.</summary>
    private async Task<HttpResponseMessage> TransmitAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken ct)
    {
        try
        {
            return await _http.SendAsync(request, completion, ct);
        }
        catch (HttpRequestException e)
        {
            throw new SystemContainersApiException(503, "DaemonUnreachable", $"cannot reach systemcontainerd at {Target}: {e.Message}");
        }
    }

    /// <summary>The API response in an HTTP response; an error response throws.</summary>
    private static async Task<ApiResponse> ResponseOf(HttpResponseMessage http, HttpMethod method, string path, CancellationToken ct)
    {
        ApiResponse? response;
        try
        {
            response = await http.Content.ReadFromJsonAsync<ApiResponse>(Wire.Json, ct);
        }
        catch (JsonException)
        {
            response = null;
        }
        if (response is null)
            throw new SystemContainersApiException((int)http.StatusCode, "BadResponse", $"{method} /{path}: HTTP {(int)http.StatusCode} without an API response");
        if (response.Type == "error")
            throw new SystemContainersApiException(response.ErrorCode, response.ErrorId ?? "Error", response.Error ?? "unknown error");
        return response;
    }

    private T Deserialize<T>(JsonElement? element)
    {
        if (element is null || element.Value.ValueKind == JsonValueKind.Null) return default!;
        var value = element.Value.Deserialize<T>(Wire.Json)!;
        if (RemoteName is null) return value;
        if (value is IRemoteObject one) one.Remote = RemoteName;
        else if (value is IEnumerable<IRemoteObject> many) foreach (var item in many) item.Remote = RemoteName;
        return value;
    }

    public void Dispose()
    {
        _http.Dispose();
        _handler.Dispose();
    }
}
