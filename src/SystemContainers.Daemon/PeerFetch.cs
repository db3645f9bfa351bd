using System.Net;
using System.Net.Http.Json;
using SystemContainers.Api;
using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>
/// One GET from another daemon over TLS 1.3, accepting only the server certificate the request
/// names and following no redirect: how a daemon pulls an image or a container (and a live move's
/// one POST back, its verdict). A peer it cannot reach is SourceUnreachable, one that answers with
/// an error SourceRefused (Forbidden for 403).
/// </summary>
public sealed class PeerFetch : IDisposable
{
    private readonly SocketsHttpHandler _handler;
    private readonly HttpClient _http;

    public PeerFetch(string certificate)
    {
        _handler = SystemContainersClient.PinnedTlsHandler(certificate);
        _handler.AllowAutoRedirect = false;
        _http = new HttpClient(_handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>The answer's headers, its body still to read; what names the thing fetched, for errors.</summary>
    public async Task<HttpResponseMessage> GetAsync(Uri url, Version version, string what, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url) { Version = version, VersionPolicy = HttpVersionPolicy.RequestVersionExact };
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        }
        catch (HttpRequestException e)
        {
            throw new EngineException(FailureKind.Failed, "SourceUnreachable", $"cannot fetch {what} from {url.GetLeftPart(UriPartial.Authority)}: {e.Message}");
        }
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var error = await ErrorOf(response, ct);
            throw new EngineException(response.StatusCode == HttpStatusCode.Forbidden ? FailureKind.Forbidden : FailureKind.Failed,
                "SourceRefused", $"{url.GetLeftPart(UriPartial.Authority)} refused to send {what}: HTTP {(int)response.StatusCode}: {error}");
        }
    }

    /// <summary>POSTs body as JSON and reads the answer; errors as GetAsync's.</summary>
    public async Task PostAsync<T>(Uri url, T body, string what, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url)
            {
                Version = HttpVersion.Version20, VersionPolicy = HttpVersionPolicy.RequestVersionExact, Content = JsonContent.Create(body, options: Wire.Json),
            };
            response = await _http.SendAsync(request, ct);
        }
        catch (HttpRequestException e)
        {
            throw new EngineException(FailureKind.Failed, "SourceUnreachable", $"cannot send {what} to {url.GetLeftPart(UriPartial.Authority)}: {e.Message}");
        }
        using (response)
        {
            if (response.IsSuccessStatusCode) return;
            throw new EngineException(response.StatusCode == HttpStatusCode.Forbidden ? FailureKind.Forbidden : FailureKind.Failed,
                "SourceRefused", $"{url.GetLeftPart(UriPartial.Authority)} refused {what}: HTTP {(int)response.StatusCode}: {await ErrorOf(response, ct)}");
        }
    }

    private static async Task<string> ErrorOf(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            return (await response.Content.ReadFromJsonAsync<ApiResponse>(Wire.Json, ct))?.Error ?? "no error message";
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException or HttpRequestException)
        {
            return "no error message";
        }
    }

    public void Dispose()
    {
        _http.Dispose();
        _handler.Dispose();
    }
}
