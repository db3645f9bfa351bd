namespace SystemContainers.Api;

public sealed partial class SystemContainersClient
{
    /// <summary>The media type of a backup tarball, both ways.</summary>
    public const string BackupContentType = "application/octet-stream";

    /// <summary>
    /// Exports a stopped container as a backup tarball (compression: none, gzip or zstd):
    /// readTarball gets the daemon's stream once it has accepted the request.
    /// </summary>
    public async Task ExportContainerAsync(string name, bool snapshots, bool optimized, string compression, Func<Stream, Task> readTarball,
        CancellationToken ct = default)
    {
        string url = $"{ContainerUrl}{Esc(name)}/backup?compression={Esc(compression)}{(snapshots ? "&snapshots=1" : "")}{(optimized ? "&optimized=1" : "")}";
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        using var http = await TransmitAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!http.IsSuccessStatusCode || http.Content.Headers.ContentType?.MediaType != BackupContentType)
        {
            await ResponseOf(http, HttpMethod.Get, url, ct);
            throw new SystemContainersApiException((int)http.StatusCode, "BadResponse", $"GET {url}: no backup in the response");
        }
        await using var body = await http.Content.ReadAsStreamAsync(ct);
        await readTarball(body);
    }

    /// <summary>Makes a container from a backup tarball, written by writeTarball as it is sent, named name (else the backup's) in pool (else the default).</summary>
    public async Task<SystemContainer> ImportContainerAsync(string? name, string? pool, string compression, Func<Stream, Task> writeTarball,
        CancellationToken ct = default)
    {
        string url = $"1.0/containers?compression={Esc(compression)}{(name is null ? "" : $"&name={Esc(name)}")}{(pool is null ? "" : $"&pool={Esc(pool)}")}";
        var content = new ArchiveContent(writeTarball);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(BackupContentType);
        var response = await SendRawAsync(HttpMethod.Post, url, null, ct, content);
        return Deserialize<SystemContainer>(response.Metadata);
    }
}
