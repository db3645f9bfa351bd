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
            return Open(c, options, lease, TakeMoment, null);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The export of a container whose tree criu holds frozen, for a live move (SendRunningContainer):
    /// the caller holds its gate, nothing writes to the volume, so the volume itself is sent, then
    /// criu's images from imagesDir.
    /// </summary>
    public ContainerExport OpenFrozen(Container c, ExportOptions options, string imagesDir) =>
        Open(c, options, NoLease.Instance, (_, _, _) => null, imagesDir);

    private ContainerExport Open(Container c, ExportOptions options, IDisposable lease, Func<Container, IStorageDriver, Volume, string?> moment, string? imagesDir)
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
            Path.Combine(parts.Options.StateDir, "backups"), lease) { ImagesDir = imagesDir };
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
    private static readonly ImportLimits Unlimited = new(long.MaxValue, long.MaxValue);
    private readonly IStorageDriver _driver;
    private readonly Volume _volume;
    private readonly string? _moment;
    private readonly VolumeSource _image;
    private readonly Spec.IdMap? _map;
    private readonly BackupIndex _index;
    private readonly VolumeFormat _format;
    private readonly BackupCompression _compression;
    private readonly string _spool;
    private readonly IDisposable _lease;

    /// <summary>Where the member names of criu's images begin, after the container's root (a live move's stream only).</summary>
    public const string ImagesPrefix = "backup/checkpoint/";

    /// <summary>criu's images of the frozen tree, sent after the root; null for every other export.</summary>
    internal string? ImagesDir { get; init; }

    /// <summary>moment: the temporary snapshot a running container's root is sent from (null: the stopped volume itself), deleted on Dispose.</summary>
    internal ContainerExport(IStorageDriver driver, Volume volume, string? moment, VolumeSource image, Spec.IdMap? map, BackupIndex index, VolumeFormat format,
        BackupCompression compression, string spool, IDisposable lease)
    {
        (_driver, _volume, _moment, _image, _map, _index, _format, _compression, _spool, _lease) =
            (driver, volume, moment, image, map, index, format, compression, spool, lease);
    }

    public async Task WriteAsync(Stream output, CancellationToken ct)
    {
        if (_compression == BackupCompression.Zstd)
            await StreamPipe.RunAsync(WriteTarballAsync,
                (tar, token) => PipedTool.RunAsync("zstd", ["-q", "-c", "-T0", "-3"], tar, output, "compress the backup with zstd", token), ct);
        else if (_compression == BackupCompression.Gzip)
        {
            await using var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true);
            await StreamPipe.RunAsync(WriteTarballAsync, (tar, token) => tar.CopyToAsync(gzip, token), ct);
        }
        else await StreamPipe.RunAsync(WriteTarballAsync, (tar, token) => tar.CopyToAsync(output, token), ct);
    }

    private async Task WriteTarballAsync(Stream output, CancellationToken ct)
    {
        var tar = new TarballWriter(output);
        byte[] index = _index.ToBytes();
        tar.AddFile(BackupIndex.Member, 0x1a4, index.Length, new MemoryStream(index), DateTimeOffset.UtcNow);
        string? parent = null;
        foreach (var snapshot in _index.Snapshots)
        {
            if (_format == VolumeFormat.Tar) await AddTreeAsync(tar, snapshot, BackupIndex.TreeOf(snapshot), ct);
            else await AddSendStreamAsync(tar, snapshot, parent, BackupIndex.StreamOf(snapshot), ct);
            parent = snapshot;
        }
        if (_format == VolumeFormat.Tar) await AddTreeAsync(tar, _moment, BackupIndex.ContainerTree, ct);
        else await AddSendStreamAsync(tar, _moment, parent, BackupIndex.ContainerStream, ct);
        if (ImagesDir is not null) AddImages(tar, ImagesDir);
        tar.Finish();
    }

    /// <summary>The driver's tar stream of one root, each member put under prefix (hardlinks' targets too).</summary>
    private Task AddTreeAsync(TarballWriter tar, string? snapshot, string prefix, CancellationToken ct) =>
        StreamPipe.RunAsync((s, token) => _driver.SendAsync(_volume, _image, _map, snapshot, null, VolumeFormat.Tar, s, token), (s, token) => Task.Run(() =>
        {
            var reader = new TarballReader(s, Unlimited);
            while (reader.Next() is TarMember m)
            {
                token.ThrowIfCancellationRequested();
                tar.Add(m.IsHardlink ? m with { LinkName = prefix + Relative(m.LinkName) } : m, prefix + Relative(m.Name), reader.Read);
            }
            s.CopyTo(Stream.Null);
        }, token), ct);

    /// <summary>
    /// A tar member's size comes before its data, and a btrfs send stream's size is known only at
    /// its end: it is spooled to a file under the state directory, removed once it is in the tarball.
    /// </summary>
    private async Task AddSendStreamAsync(TarballWriter tar, string? snapshot, string? parent, string name, CancellationToken ct)
    {
        Directory.CreateDirectory(_spool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string file = Path.Combine(_spool, $".send-{Guid.NewGuid():N}");
        try
        {
            await using (var spool = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
                await _driver.SendAsync(_volume, _image, _map, snapshot, parent, VolumeFormat.Btrfs, spool, ct);
            TestHooks.Reach("backup-export-spooled");
            await using var data = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.None, 1 << 20);
            tar.AddFile(name, 0x180, data.Length, data, DateTimeOffset.UtcNow);
        }
        finally
        {
            File.Delete(file);
        }
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

    /// <summary>A member name of GNU tar's ("./etc/passwd", "." for the root) relative to the root.</summary>
    private static string Relative(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        return name == "." ? "" : name;
    }

    public void Dispose()
    {
        try
        {
            if (_moment is not null) _driver.DeleteSnapshot(_volume, _moment);
        }
        catch (Exception e) when (e is EngineException or Interop.NativeException or IOException)
        {
            // Hidden from every listing, it goes with the next snapshot or the container.
            EngineLog.Write($"cannot delete the temporary snapshot {_moment} of container '{_volume.Container}' after its export: {e.Message}");
        }
        finally
        {
            _lease.Dispose();
        }
    }
}
