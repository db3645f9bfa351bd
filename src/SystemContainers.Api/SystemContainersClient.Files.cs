namespace SystemContainers.Api;

public sealed partial class SystemContainersClient
{
    /// <summary>
    /// Sends a tar archive (written by writeArchive as it is sent) into a container at
    /// destination: an existing directory takes the archive's items, else it is the one item's new name.
    /// </summary>
    public async Task<FilePushSummary> PushFilesAsync(string name, string destination, bool force, Func<Stream, Task> writeArchive, CancellationToken ct = default)
    {
        var response = await SendRawAsync(HttpMethod.Post, $"{ContainerUrl}{Esc(name)}/files?path={Esc(destination)}{(force ? "&force=1" : "")}", null, ct,
            new ArchiveContent(writeArchive));
        return Deserialize<FilePushSummary>(response.Metadata);
    }

    /// <summary>Reads files out of a container: readArchive gets the daemon's tar stream once it has accepted the request.</summary>
    public async Task PullFilesAsync(string name, string path, bool recurse, Func<Stream, Task> readArchive, CancellationToken ct = default)
    {
        string url = $"{ContainerUrl}{Esc(name)}/files?path={Esc(path)}{(recurse ? "&recurse=1" : "")}";
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        using (var http = await TransmitAsync(request, HttpCompletionOption.ResponseHeadersRead, ct))
        {
            if (http.Content.Headers.ContentType?.MediaType != LocalArchive.ContentType)
            {
                await ResponseOf(http, HttpMethod.Get, url, ct);
                throw new SystemContainersApiException((int)http.StatusCode, "BadResponse", $"GET /{url}: no archive in the response");
            }
            await using var body = await http.Content.ReadAsStreamAsync(ct);
            await readArchive(body);
        }
    }

    /// <summary>A request body written as it is sent (chunked), so no archive is ever held whole.</summary>
    private sealed class ArchiveContent(Func<Stream, Task> write) : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context) => write(stream);

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
