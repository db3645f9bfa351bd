using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// Exports a stopped container as a backup tarball in Incus' layout, streamed from the daemon to
/// a local file: written beside it under a temporary name and renamed when complete, so a failed
/// export leaves no partial file at -Path. The compression follows -Path's extension.
/// </summary>
[Cmdlet(VerbsData.Export, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(FileInfo))]
public sealed class ExportSystemContainerCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>The tarball to write: .tar, .tar.gz (.tgz) or .tar.zst (.tzst).</summary>
    [Parameter(Mandatory = true, Position = 1)]
    public string Path { get; set; } = "";

    [Parameter]
    public SwitchParameter IncludeSnapshots { get; set; }

    /// <summary>btrfs send streams instead of file trees: faster, and imports only into a btrfs pool.</summary>
    [Parameter]
    public SwitchParameter Optimized { get; set; }

    /// <summary>Replaces an existing file at -Path.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        string path = GetUnresolvedProviderPathFromPSPath(Path);
        if (File.Exists(path) && !Force)
        {
            WriteError(new ErrorRecord(new IOException($"{path} already exists; use -Force to replace it"), "FileExists", ErrorCategory.ResourceExists, path));
            return;
        }
        if (!ShouldProcess(Name, $"Export system container to {path}")) return;
        if (IncludeSnapshots) WarnOfStatefulSnapshots(Name, "the backup's snapshot");
        string compression = path.EndsWith(".zst", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tzst", StringComparison.OrdinalIgnoreCase) ? "zstd"
            : path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".tgz", StringComparison.OrdinalIgnoreCase) ? "gzip" : "none";
        string partial = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(path) ?? ".", $".{System.IO.Path.GetFileName(path)}.{Guid.NewGuid():N}.partial");
        bool ok = false;
        try
        {
            ok = TryCallWithProgress(async progress =>
            {
                await Client.ExportContainerAsync(Name, IncludeSnapshots, Optimized, compression,
                    body => BackupFile.CopyAsync(body, partial, FileMode.CreateNew, null, progress, "written", Cancel), Cancel);
                return true;
            }, $"Exporting {Name} to {path}", Name, out _);
            if (ok) File.Move(partial, path, overwrite: true);
        }
        catch (IOException e)
        {
            WriteError(new ErrorRecord(e, "FileWriteFailed", ErrorCategory.WriteError, path));
            ok = false;
        }
        finally
        {
            if (!ok) File.Delete(partial);
        }
        if (ok) WriteObject(new FileInfo(path));
    }
}

/// <summary>
/// Makes a new container from a backup tarball (from Export-SystemContainer), streamed to
/// the daemon, which checks it as hostile input and leaves nothing behind when it refuses it.
/// </summary>
[Cmdlet(VerbsData.Import, "SystemContainer", SupportsShouldProcess = true)]
[OutputType(typeof(SystemContainer))]
public sealed class ImportSystemContainerCommand : SystemContainerCmdlet
{
    /// <summary>The backup tarball: .tar, .tar.gz or .tar.zst (told apart by their first bytes).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    /// <summary>The new container's name; by default the one in the backup.</summary>
    [Parameter(Position = 1)]
    public string? Name { get; set; }

    [Parameter]
    public string? StoragePool { get; set; }

    protected override void ProcessRecord()
    {
        string path = GetUnresolvedProviderPathFromPSPath(Path);
        string compression;
        try
        {
            compression = BackupFile.CompressionOf(path);
        }
        catch (IOException e)
        {
            WriteError(new ErrorRecord(e, e is FileNotFoundException ? "PathNotFound" : "FileReadFailed",
                e is FileNotFoundException ? ErrorCategory.ObjectNotFound : ErrorCategory.ReadError, path));
            return;
        }
        if (!ShouldProcess(Name ?? path, $"Import system container from {path}")) return;
        long size = new FileInfo(path).Length;
        if (TryCallWithProgress(progress => Client.ImportContainerAsync(Name, StoragePool, compression, async body =>
            {
                await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous);
                await BackupFile.CopyAsync(file, body, size, progress, "sent", Cancel);
            }, Cancel), $"Importing {path}", path, out var imported))
            WriteObject(imported);
    }
}

/// <summary>The local side of backups: the file copy with progress, and telling a tarball's compression by its first bytes.</summary>
internal static class BackupFile
{
    private const int ReportEvery = 64 << 20;

    public static string CompressionOf(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[6];
        int n = file.ReadAtLeast(magic, 6, throwOnEndOfStream: false);
        if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return "gzip";
        if (n >= 4 && magic[..4].SequenceEqual(new byte[] { 0x28, 0xb5, 0x2f, 0xfd })) return "zstd";
        if (n >= 6 && magic.SequenceEqual(new byte[] { 0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0 }) || n >= 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h')
            throw new IOException($"{path} is compressed with xz or bzip2; a backup is a .tar, .tar.gz or .tar.zst");
        return "none";
    }

    /// <summary>Copies a backup stream into a new file.</summary>
    public static async Task CopyAsync(Stream from, string file, FileMode mode, long? size, Action<string> progress, string verb, CancellationToken ct)
    {
        await using var to = new FileStream(file, mode, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        try
        {
            await CopyAsync(from, to, size, progress, verb, ct);
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !ct.IsCancellationRequested)
        {
            throw new SystemContainersApiException(502, "BackupStreamBroken", $"the daemon's backup stream broke off after {to.Length} bytes: {e.Message}");
        }
    }

    /// <summary>Copies with a progress line every 64 MiB: bytes so far, and of how many when known.</summary>
    public static async Task CopyAsync(Stream from, Stream to, long? size, Action<string> progress, string verb, CancellationToken ct)
    {
        var buffer = new byte[1 << 20];
        long done = 0, reported = 0;
        for (int n; (n = await from.ReadAsync(buffer, ct)) > 0;)
        {
            await to.WriteAsync(buffer.AsMemory(0, n), ct);
            done += n;
            if (done - reported < ReportEvery) continue;
            reported = done;
            progress(size is long total && total > 0 ? $"{done >> 20} of {total >> 20} MiB {verb}" : $"{done >> 20} MiB {verb}");
        }
    }
}
