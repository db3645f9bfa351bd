using SystemContainers.Engine.State;
using System.IO.Compression;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>How a backup tarball is compressed: the exporter writes it so, the importer is told so.</summary>
public enum BackupCompression { None, Gzip, Zstd }

/// <summary>What an export holds: the snapshots too, and btrfs send streams instead of trees (btrfs pools only).</summary>
public sealed record ExportOptions(bool IncludeSnapshots, bool Optimized, BackupCompression Compression);

/// <summary>
/// Exports a container as a backup tarball in Incus' layout (see BackupIndex): the index first,
/// then each snapshot oldest first, then the container, each a tree of its root in the
/// container's own ids or, optimized, a btrfs send stream (incremental from the snapshot before).
/// A running container is frozen only while a temporary snapshot is taken (a dot name, which no
/// listing shows and the next snapshot removes if a crash left it), and its root is sent from
/// that snapshot, so the export holds one moment of it while it runs on. Everything is checked
/// when the export is opened, so a refusal comes before the first byte.
/// </summary>
internal sealed class ExportContainer(EngineParts parts, FreezeContainer freezer)
{
    public async Task<ContainerExport> OpenAsync(Container c, ExportOptions options, CancellationToken ct)
    {
        await c.Gate.WaitAsync(ct);
        var lease = new GateLease(c.Gate);
        try
        {
            if (!parts.Registry.IsCurrent(c)) throw ContainerRegistry.Gone(c.Name);
            return Open(c, options, lease, TakeMoment);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The export of a running container for a live move (SendRunningContainer), under the gate its
    /// caller holds. Optimized, a read-only snapshot of the running volume is taken now (no freeze:
    /// a btrfs snapshot is one instant, and whatever changes after it goes in the frozen part):
    /// WritePresyncAsync sends it while the container runs, and once criu holds the tree frozen
    /// WriteAsync sends only the volume's changes since, then criu's images (ImagesDir). A tar
    /// export has no such part: its whole root goes frozen.
    /// </summary>
    public ContainerExport OpenLive(Container c, ExportOptions options)
    {
        var export = Open(c, options, NoLease.Instance, (_, _, _) => null);
        if (options.Optimized) export.TakePresync();
        return export;
    }

    private ContainerExport Open(Container c, ExportOptions options, IDisposable lease, Func<Container, IStorageDriver, Volume, string?> moment)
    {
        c.Intact();
        var record = c.Record;
        var driver = parts.Storage.DriverOf(record);
        var pool = parts.Storage.Get(record.StoragePool ?? StoragePool.DefaultName).Pool;
        var format = options.Optimized ? VolumeFormat.Btrfs : VolumeFormat.Tar;
        if (!driver.StreamFormats.Contains(format))
            throw EngineException.Invalid("OptimizedUnsupported", $"an optimized export is a btrfs send stream; container '{c.Name}' is in storage pool '{pool.Name}' ({pool.Driver})");
        var volume = parts.Storage.VolumeOf(record);
        var snapshots = options.IncludeSnapshots ? SnapshotRecords.Read(parts.Store.DirectoryOf(c.Name)).Over(driver.Snapshots(volume)) : [];
        var index = new BackupIndex(record.Name, pool.Driver, pool.Name, "container", options.Optimized, false, [.. snapshots.Select(s => s.Name)],
            new BackupConfig(new BackupContainer(record.Name, record.Config, record.Created, record.ImageFingerprint, record.ImageAlias, record.InitKind),
                [.. snapshots.Select(s => new BackupSnapshot(s.Name, s.Created, s.ExpiresAt))]));
        return new ContainerExport(driver, volume, moment(c, driver, volume), parts.Storage.SourceOf(record), record.IdMap, index, format, options.Compression,
            lease);
    }

    private sealed class NoLease : IDisposable
    {
        public static readonly NoLease Instance = new();
        public void Dispose() { }
    }

    /// <summary>A running container's temporary snapshot, taken frozen (unless it is frozen already); null for a stopped one, whose volume is still.</summary>
    private string? TakeMoment(Container c, IStorageDriver driver, Volume volume)
    {
        var (_, live) = c.Snapshot();
        if (live is null) return null;
        string moment = $".export-{Guid.NewGuid():N}";
        freezer.Briefly(c, () => driver.CreateSnapshot(volume, moment));
        return moment;
    }
}

/// <summary>An export opened and checked, holding its container's gate until disposed; WriteAsync streams the tarball.</summary>
public sealed class ContainerExport : IDisposable
{
    private readonly IStorageDriver _driver;
    private readonly Volume _volume;
    private readonly string? _moment;
    private readonly VolumeSource _image;
    private readonly Spec.IdMap? _map;
    private readonly BackupIndex _index;
    private readonly VolumeFormat _format;
    private readonly BackupCompression _compression;
    private readonly IDisposable _lease;

    /// <summary>Where the member names of criu's images begin, after the container's root (a live move's stream only).</summary>
    public const string ImagesPrefix = "backup/checkpoint/";

    /// <summary>criu's images of the frozen tree, sent after the root; null for every other export.</summary>
    internal string? ImagesDir { get; set; }

    /// <summary>
    /// A live move's snapshot of the running volume (OpenLive), sent by WritePresyncAsync; the
    /// volume's stream is then incremental from it. Deleted on Dispose.
    /// </summary>
    internal string? Presync { get; private set; }

    private bool _presynced;

    internal void TakePresync()
    {
        string name = $".live-{Guid.NewGuid():N}";
        _driver.CreateSnapshot(_volume, name);
        Presync = name;
    }

    /// <summary>moment: the temporary snapshot a running container's root is sent from (null: the stopped volume itself), deleted on Dispose.</summary>
    internal ContainerExport(IStorageDriver driver, Volume volume, string? moment, VolumeSource image, Spec.IdMap? map, BackupIndex index, VolumeFormat format,
        BackupCompression compression, IDisposable lease)
    {
        (_driver, _volume, _moment, _image, _map, _index, _format, _compression, _lease) =
            (driver, volume, moment, image, map, index, format, compression, lease);
    }

    public async Task WriteAsync(Stream output, CancellationToken ct)
    {
        if (_compression == BackupCompression.Zstd)
            await StreamPipe.RunAsync(WriteTarballAsync,
                (tar, token) => PipedTool.RunAsync("zstd", ["-q", "-c", "-T0", "-3"], tar, output, "compress the backup with zstd", token), ct);
        else if (_compression == BackupCompression.Gzip)
        {
            await using var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true);
            await StreamPipe.RunAsync(WriteTarballAsync, (tar, token) => tar.CopyToAsync(gzip, PipedTool.PipeBytes, token), ct);
        }
        else await StreamPipe.RunAsync(WriteTarballAsync, (tar, token) => tar.CopyToAsync(output, PipedTool.PipeBytes, token), ct);
    }

    /// <summary>
    /// A live move's first part, while the container runs: the index, the snapshots and the
    /// Presync snapshot's stream (BackupIndex.PresyncStream, then the PresyncEnd member, so the
    /// reader knows it whole without waiting for the next); nothing without a Presync. WriteAsync
    /// then writes the rest of the tarball.
    /// </summary>
    public async Task WritePresyncAsync(Stream output, CancellationToken ct)
    {
        if (Presync is null) return;
        await StreamPipe.RunAsync(async (pipe, token) =>
        {
            var tar = new TarballWriter(pipe);
            string? parent = await AddHeadAsync(tar, token);
            await AddSendStreamAsync(tar, Presync, parent, BackupIndex.PresyncStream, token);
            tar.AddFile(BackupIndex.PresyncEnd, 0x180, 0, Stream.Null, DateTimeOffset.UtcNow);
        }, (tar, token) => tar.CopyToAsync(output, PipedTool.PipeBytes, token), ct);
        _presynced = true;
    }

    private async Task WriteTarballAsync(Stream output, CancellationToken ct)
    {
        var tar = new TarballWriter(output);
        string? parent = _presynced ? Presync : await AddHeadAsync(tar, ct);
        if (_format == VolumeFormat.Tar) await AddTreeAsync(tar, _moment, BackupIndex.ContainerTree, ct);
        else await AddSendStreamAsync(tar, _moment, parent, BackupIndex.ContainerStream, ct);
        if (ImagesDir is not null) AddImages(tar, ImagesDir);
        tar.Finish();
    }

    /// <summary>The index, then each snapshot oldest first; returns the last snapshot (the container's stream's parent).</summary>
    private async Task<string?> AddHeadAsync(TarballWriter tar, CancellationToken ct)
    {
        byte[] index = _index.ToBytes();
        tar.AddFile(BackupIndex.Member, 0x1a4, index.Length, new MemoryStream(index), DateTimeOffset.UtcNow);
        string? parent = null;
        foreach (var snapshot in _index.Snapshots)
        {
            if (_format == VolumeFormat.Tar) await AddTreeAsync(tar, snapshot, BackupIndex.TreeOf(snapshot), ct);
            else await AddSendStreamAsync(tar, snapshot, parent, BackupIndex.StreamOf(snapshot), ct);
            parent = snapshot;
        }
        return parent;
    }

    /// <summary>The driver's tar stream of one root, each member put under prefix (hardlinks' targets too).</summary>
    private Task AddTreeAsync(TarballWriter tar, string? snapshot, string prefix, CancellationToken ct) =>
        _driver.AddTreeAsync(_volume, _image, _map, snapshot, tar, prefix, ct);

    /// <summary>
    /// A tar member's size comes before its data, and a btrfs send stream's size is known only at
    /// its end: the stream goes in as members of at most BackupIndex.ChunkBytes each (ChunkWriter),
    /// each held in memory until it is full, so it never passes through a file.
    /// </summary>
    private async Task AddSendStreamAsync(TarballWriter tar, string? snapshot, string? parent, string name, CancellationToken ct)
    {
        using var chunks = new ChunkWriter(tar, name);
        await _driver.SendAsync(_volume, _image, _map, snapshot, parent, VolumeFormat.Btrfs, chunks, ct);
        chunks.Complete();
    }

    /// <summary>criu's images directory is flat: each regular file is a member under ImagesPrefix.</summary>
    private static void AddImages(TarballWriter tar, string dir)
    {
        foreach (var file in new DirectoryInfo(dir).EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            if (file.LinkTarget is not null) continue;
            using var data = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
            tar.AddFile(ImagesPrefix + file.Name, (int)file.UnixFileMode, data.Length, data, DateTimeOffset.UtcNow);
        }
    }

    public void Dispose()
    {
        try
        {
            foreach (var snapshot in new[] { _moment, Presync }.OfType<string>()) DeleteTemporary(snapshot);
        }
        finally
        {
            _lease.Dispose();
        }
    }

    private void DeleteTemporary(string snapshot)
    {
        try
        {
            _driver.DeleteSnapshot(_volume, snapshot);
        }
        catch (Exception e) when (e is EngineException or Interop.NativeException or IOException)
        {
            // Hidden from every listing, it goes with the next snapshot or the container.
            EngineLog.Write($"cannot delete the temporary snapshot {snapshot} of container '{_volume.Container}' after its export: {e.Message}");
        }
    }
}

/// <summary>
/// A btrfs send stream written into a backup tarball as members NAME.000000, NAME.000001, ...
/// (BackupIndex.ChunkOf) of BackupIndex.ChunkBytes each, the last shorter: each chunk is filled
/// in memory and, once full, its size known, written to the tarball by a task of its own while
/// the next one fills, so the sender and the tarball's reader run at once. Complete writes the
/// last (at least one member, so an empty stream is still there) and waits for it.
/// </summary>
internal sealed class ChunkWriter(TarballWriter tar, string stream) : Stream
{
    private byte[] _chunk = new byte[BackupIndex.ChunkBytes], _spare = new byte[BackupIndex.ChunkBytes];
    private int _filled, _written;
    private Task _writing = Task.CompletedTask;

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int n = Math.Min(buffer.Length, _chunk.Length - _filled);
            buffer[..n].CopyTo(_chunk.AsSpan(_filled));
            _filled += n;
            buffer = buffer[n..];
            if (_filled == _chunk.Length) Emit();
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>The tarball's writer is synchronous; the tool's output pipe keeps the sender going meanwhile.</summary>
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) => WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public void Complete()
    {
        if (_filled > 0 || _written == 0) Emit();
        _writing.GetAwaiter().GetResult();
    }

    /// <summary>Hands the full chunk to a task that adds it to the tarball, once the chunk before it is in; the next fills the spare buffer.</summary>
    private void Emit()
    {
        _writing.GetAwaiter().GetResult();
        var (data, size, name) = (_chunk, _filled, BackupIndex.ChunkOf(stream, _written));
        _writing = Task.Run(() => tar.AddFile(name, 0x180, data.AsMemory(0, size), DateTimeOffset.UtcNow));
        (_chunk, _spare) = (_spare, data);
        _written++;
        _filled = 0;
        TestHooks.Reach("backup-export-chunk");
    }

    /// <summary>A send that failed midway leaves no task writing to the tarball after it.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            try { _writing.Wait(); }
            catch (AggregateException) { }
        }
        base.Dispose(disposing);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
