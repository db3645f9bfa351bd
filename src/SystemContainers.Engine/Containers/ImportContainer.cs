using System.IO.Compression;
using System.Text.RegularExpressions;
using SystemContainers.Engine.Images;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Where an import goes: a new name (else the backup's), a pool (else the default one); how its
/// tarball is compressed; whether its NICs keep their MACs (a container moved from another host,
/// whose source is removed) or get new ones (a copy, a restored backup).
/// </summary>
public sealed record ImportOptions(string? Name, string? StoragePool, BackupCompression Compression)
{
    public bool KeepHardwareAddresses { get; init; }

    /// <summary>A live move's stream: criu's images follow the root and become the container's saved state, which its start restores.</summary>
    public bool WithImages { get; init; }
}

/// <summary>
/// Makes a container from a backup tarball (see ExportContainer), which is hostile input: the
/// index is checked before anything is made; each root is unpacked by the image import's
/// extractor (no absolute or ".." names, no symlink followed, hardlinks only within the root) with
/// owners inside the container's id range and no device nodes or fifos; the tarball may unpack to
/// no more than the pool's free space. Like a create, the name is claimed first and the files are
/// made in a staging directory moved in place last, each step undone if a later one fails; a
/// daemon killed midway leaves a staging directory and volumes no container owns, which its next
/// start removes.
/// </summary>
internal sealed partial class ImportContainer(EngineParts parts, NicDefaults nicDefaults)
{
    [GeneratedRegex("^[0-9a-f]{64}\\z")]
    private static partial Regex Fingerprint();

    public async Task<Container> RunAsync(Stream input, ImportOptions options, CancellationToken ct)
    {
        using var decompressed = Decompress(input, options.Compression, ct);
        string pool = parts.Storage.Resolve(options.StoragePool);
        var poolView = parts.Storage.Get(pool);
        var driver = parts.Storage.DriverOf(pool);
        var limits = new ImportLimits(Math.Max(0, poolView.FreeBytes), ImportLimits.DefaultMaxEntries);
        var tar = new TarballReader(decompressed.Output, limits);
        var index = Refusing(() => ReadIndex(tar));
        StepTrace.Mark("import: index read");
        string name = string.IsNullOrEmpty(options.Name) ? index.Name : options.Name;
        ContainerName.Validate(name);
        var format = index.Optimized ? VolumeFormat.Btrfs : VolumeFormat.Tar;
        if (!driver.StreamFormats.Contains(format))
            throw EngineException.Invalid("OptimizedUnsupported", $"an optimized backup holds btrfs send streams and imports only into a btrfs pool; storage pool '{pool}' is {poolView.Pool.Driver}");
        foreach (var s in index.Snapshots) SnapshotName.Validate(s);
        var source = index.Config.Container;
        if (!Fingerprint().IsMatch(source.ImageFingerprint))
            throw Invalid($"its image fingerprint '{DisplayText.Escape(source.ImageFingerprint)}' is not a SHA-256");
        if (source.InitKind is not (InitKinds.Systemd or InitKinds.Busybox or InitKinds.Other))
            throw Invalid($"its init kind '{DisplayText.Escape(source.InitKind)}' is not systemd, busybox or other");
        // The MACs are the exported container's: the new one gets its own, as a copy does, unless it is that container moved.
        var config = source.Config.Where(kv => options.KeepHardwareAddresses || !(NicSpec.IsNicKey(kv.Key) && kv.Key.EndsWith(".hwaddr", StringComparison.Ordinal)))
            .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        var parsed = nicDefaults.Complete(ContainerConfig.Parse(config), firstConfig: false);
        foreach (var disk in parsed.Disks) disk.CheckSource();

        using var staged = StagedContainer.Claim(parts, name, parsed, idmap => new ContainerRecord(name, source.ImageFingerprint, source.ImageAlias,
            parsed.Raw, source.Created, idmap, source.InitKind, Guid.NewGuid()) { StoragePool = parts.Storage.Resolve(pool) });
        var container = staged.Container;
        var volume = new Volume(name, staged.Dir);
        var policy = new ReceivePolicy(limits, container.Record.IdMap?.Size ?? IdMap.DefaultSize);
        string? images = options.WithImages ? Path.Combine(staged.Dir, CheckpointContainer.DirName) : null;
        if (options.WithImages) staged.WriteConfig();
        await Refusing(() => ReceiveAllAsync(tar, index, driver, volume, parts.Storage.SourceOf(source.ImageFingerprint), container.Record.IdMap, format, policy,
            images, ct));
        await decompressed.FinishAsync(ct);
        Times(index).Write(staged.Dir);
        return staged.Commit("backup-import-staged");
    }

    /// <summary>Each snapshot's creation time and expiry as the index gives them (the received copies are new on disk).</summary>
    private static SnapshotRecords Times(BackupIndex index)
    {
        var records = new SnapshotRecords(new Dictionary<string, SnapshotRecord>());
        foreach (var s in index.Config.Snapshots.Where(s => index.Snapshots.Contains(s.Name)))
            records = records.With(s.Name, new SnapshotRecord(s.Created, s.ExpiresAt));
        return records;
    }

    private static BackupIndex ReadIndex(TarballReader tar)
    {
        var m = tar.Next() ?? throw new InvalidDataException("the archive has no entries");
        if (Normal(m.Name) != BackupIndex.Member || !m.IsRegular)
            throw new InvalidDataException($"its first entry is '{Short(m.Name)}', not the index {BackupIndex.Member}");
        if (m.Size > BackupIndex.MaxBytes) throw new InvalidDataException($"{BackupIndex.Member} has {m.Size} bytes, more than {BackupIndex.MaxBytes}");
        var data = new byte[m.Size];
        for (int at = 0, n; at < data.Length; at += n)
            if ((n = tar.Read(data.AsSpan(at))) <= 0) throw new InvalidDataException($"{BackupIndex.Member} is cut short");
        return BackupIndex.Parse(data);
    }

    /// <summary>Each snapshot oldest first, then the container: the order ExportContainer writes, which a btrfs stream's parent needs.</summary>
    private static async Task ReceiveAllAsync(TarballReader tar, BackupIndex index, IStorageDriver driver, Volume volume, VolumeSource image, IdMap? map,
        VolumeFormat format,
        ReceivePolicy policy, string? imagesDir, CancellationToken ct)
    {
        var next = Skip(tar, tar.Next());
        bool presynced = false;
        var parts = index.Snapshots.Select(s => (Snapshot: (string?)s, Tree: BackupIndex.TreeOf(s), Stream: BackupIndex.StreamOf(s)))
            .Append((null, BackupIndex.ContainerTree, BackupIndex.ContainerStream));
        foreach (var (snapshot, tree, stream) in parts)
        {
            string what = snapshot is null ? "the container" : $"snapshot '{snapshot}'";
            if (format == VolumeFormat.Btrfs && snapshot is null && imagesDir is not null && next is not null
                && Normal(next.Name) == BackupIndex.ChunkOf(BackupIndex.PresyncStream, 0))
            {
                next = await ReceivePresyncAsync(tar, driver, volume, image, map, policy, ct);
                presynced = true;
            }
            if (format == VolumeFormat.Btrfs)
            {
                bool chunked = next is not null && Normal(next.Name) == BackupIndex.ChunkOf(stream, 0);
                if (next is null || !chunked && Normal(next.Name) != stream || !next.IsRegular)
                    throw new InvalidDataException($"entry '{Short(next?.Name ?? "(end)")}' comes where {what}'s stream {BackupIndex.ChunkOf(stream, 0)} belongs");
                var member = new MemberStream(tar, chunked ? stream : null);
                await driver.ReceiveAsync(volume, image, map, snapshot, format, member, policy, ct);
                StepTrace.Mark($"import: {what} received");
                TestHooks.Reach("backup-import-part");
                next = Skip(tar, member.Next());
                if (snapshot is null && presynced) driver.DeleteSnapshot(volume, PresyncSnapshot);
                continue;
            }
            if (next is null || !Normal(next.Name).StartsWith(tree, StringComparison.Ordinal) && Normal(next.Name) + "/" != tree)
                throw new InvalidDataException($"entry '{Short(next?.Name ?? "(end)")}' comes where {what}'s root {tree} belongs");
            TarMember? after = null;
            await StreamPipe.RunAsync((s, token) => Task.Run(() => after = Section(tar, next, tree, s, token), token),
                (s, token) => driver.ReceiveAsync(volume, image, map, snapshot, format, s, policy, token), ct);
            TestHooks.Reach("backup-import-part");
            next = Skip(tar, after);
        }
        if (imagesDir is not null)
        {
            next = ReceiveImages(tar, next, imagesDir);
            StepTrace.Mark("import: criu's images received");
        }
        if (next is not null) throw new InvalidDataException($"entry '{Short(next.Name)}' follows the container's root");
    }

    /// <summary>A live move's snapshot of the running volume (BackupIndex.PresyncStream) as the receiving volume's hidden snapshot.</summary>
    private const string PresyncSnapshot = ".live-presync";

    /// <summary>
    /// A live move's stream of the running volume, received while the source still runs the
    /// container: the container's stream, which comes once the source has it frozen, is
    /// incremental from it. The tar reader is at its first chunk; returns the member after
    /// BackupIndex.PresyncEnd, read only once the source goes on.
    /// </summary>
    private static async Task<TarMember?> ReceivePresyncAsync(TarballReader tar, IStorageDriver driver, Volume volume, VolumeSource image, IdMap? map,
        ReceivePolicy policy, CancellationToken ct)
    {
        var member = new MemberStream(tar, BackupIndex.PresyncStream);
        await driver.ReceiveAsync(volume, image, map, PresyncSnapshot, VolumeFormat.Btrfs, member, policy, ct);
        // Written back now, while the source runs on: the frozen part's receive snapshots the
        // pre-sync, and a btrfs snapshot writes back what is dirty in its source first.
        Interop.Sys.SyncFs(driver.Root);
        var end = member.Next();
        if (end is null || Normal(end.Name) != BackupIndex.PresyncEnd || !end.IsRegular || end.Size != 0)
            throw new InvalidDataException($"entry '{Short(end?.Name ?? "(end)")}' comes where {BackupIndex.PresyncEnd} belongs");
        StepTrace.Mark("import: the running container's volume received");
        TestHooks.Reach("live-presync-received");
        return tar.Next();
    }

    /// <summary>criu's images after the root (a live move's): one flat directory of regular files, at least one.</summary>
    private static TarMember? ReceiveImages(TarballReader tar, TarMember? m, string dir)
    {
        // As criu made it on the source: its restore opens images from inside the container's user namespace too.
        Directory.CreateDirectory(dir);
        int files = 0;
        var buffer = new byte[1 << 16];
        for (; m is not null && Normal(m.Name).StartsWith(ContainerExport.ImagesPrefix, StringComparison.Ordinal); m = tar.Next(), files++)
        {
            string file = Normal(m.Name)[ContainerExport.ImagesPrefix.Length..];
            if (!m.IsRegular || file.Length == 0 || file.Contains('/') || file is "." or "..")
                throw new InvalidDataException($"entry '{Short(m.Name)}' is not a plain file of criu's images");
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 1 << 20,
                // Only the read bits the source gave: no image is executable or writable but by root.
                UnixCreateMode = (UnixFileMode)(m.Mode & 0x124) | UnixFileMode.UserRead | UnixFileMode.UserWrite,
            };
            using var output = new FileStream(Path.Combine(dir, file), options);
            for (int n; (n = tar.Read(buffer)) > 0;) output.Write(buffer, 0, n);
        }
        if (files == 0) throw new InvalidDataException($"the stream has no criu images ({ContainerExport.ImagesPrefix}) after the container's root");
        return m;
    }

    /// <summary>Rewrites the members under tree, from first on, as a tar of their own; returns the first member after them.</summary>
    private static TarMember? Section(TarballReader tar, TarMember first, string tree, Stream output, CancellationToken ct)
    {
        var writer = new TarballWriter(output);
        TarMember? m = first;
        for (; m is not null && InTree(m.Name, tree); m = tar.Next())
        {
            ct.ThrowIfCancellationRequested();
            var member = m;
            if (m.IsHardlink)
            {
                if (!InTree(m.LinkName, tree))
                    throw new InvalidDataException($"hardlink '{Short(m.Name)}' points to '{Short(m.LinkName)}', outside its root {tree}");
                member = m with { LinkName = Within(m.LinkName, tree) };
            }
            writer.Add(member, Within(m.Name, tree), tar.Read);
        }
        writer.Finish();
        return m;
    }

    /// <summary>Incus puts the instance's own files (backup.yaml, metadata.yaml, templates) beside its rootfs: they are not the root and are passed over.</summary>
    private static TarMember? Skip(TarballReader tar, TarMember? m)
    {
        while (m is not null && Normal(m.Name) is var n && n.StartsWith("backup/container/", StringComparison.Ordinal)
               && !InTree(n, BackupIndex.ContainerTree) && n != "backup/container/")
            m = tar.Next();
        while (m is not null && Normal(m.Name) is "backup/container/" or "backup/snapshots/" or "backup/")
            m = tar.Next();
        return m;
    }

    private static bool InTree(string name, string tree)
    {
        string n = Normal(name);
        return n.StartsWith(tree, StringComparison.Ordinal) || n + "/" == tree;
    }

    private static string Within(string name, string tree)
    {
        string n = Normal(name);
        return n.Length <= tree.Length ? "." : n[tree.Length..];
    }

    private static string Normal(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        return name;
    }

    private static Decompression Decompress(Stream input, BackupCompression compression, CancellationToken ct) => compression switch
    {
        BackupCompression.Gzip => new Decompression(new GZipStream(input, CompressionMode.Decompress, leaveOpen: true), null, owned: true),
        BackupCompression.Zstd => Decompression.Zstd(input, ct),
        _ => new Decompression(input, null, owned: false),
    };

    /// <summary>Anything wrong with the tarball is one error that says so; the undo list has removed what it made.</summary>
    private static async Task Refusing(Func<Task> step)
    {
        try { await step(); }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException) { throw Invalid(e.Message); }
    }

    private static T Refusing<T>(Func<T> step)
    {
        try { return step(); }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException) { throw Invalid(e.Message); }
    }

    private static EngineException Invalid(string why) => EngineException.Invalid("InvalidBackup", $"cannot import the backup: {why}");

    private static string Short(string name) => name.Length <= 200 ? DisplayText.Escape(name) : DisplayText.Escape($"{name[..120]}...{name[^60..]}");

    /// <summary>The tarball's bytes as tar: the request's own, gunzipped in process, or through zstd.</summary>
    private sealed class Decompression(Stream output, PipedTool? tool, bool owned) : IDisposable
    {
        public Stream Output { get; } = output;

        public static Decompression Zstd(Stream input, CancellationToken ct)
        {
            var tool = PipedTool.Start("zstd", ["-d", "-c", "-q"], input, ct);
            return new Decompression(tool.Output, tool, owned: false);
        }

        /// <summary>After the last member: the rest is read (a tool that failed on a corrupt tail says so).</summary>
        public async Task FinishAsync(CancellationToken ct)
        {
            const int MaxTrailer = 1 << 20;
            var buf = new byte[64 * 1024];
            long trailer = 0;
            for (int n; (n = Output.Read(buf)) > 0;)
                if ((trailer += n) > MaxTrailer) throw Invalid($"more than {MaxTrailer} bytes follow the end of the archive");
            if (tool is not null) await tool.WaitAsync("decompress the backup with zstd", ct);
        }

        public void Dispose()
        {
            if (owned) Output.Dispose();
            tool?.Dispose();
        }
    }

    /// <summary>
    /// A btrfs stream's bytes: the tar reader's current member's data, and with chunked (the
    /// stream's name) those of the members after it that are its next chunks (BackupIndex.ChunkOf),
    /// in order; the first member that is not ends it.
    /// </summary>
    private sealed class MemberStream(TarballReader tar, string? chunked) : Stream
    {
        private int _chunk;
        private bool _ended;
        private TarMember? _after;

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            while (!_ended)
            {
                int n = tar.Read(buffer);
                if (n > 0 || buffer.Length == 0) return n;
                if (chunked is null)
                {
                    _ended = true;
                    break;
                }
                var m = tar.Next();
                if (m is not null && m.IsRegular && Normal(m.Name) == BackupIndex.ChunkOf(chunked, _chunk + 1))
                {
                    _chunk++;
                    continue;
                }
                (_after, _ended) = (m, true);
            }
            return 0;
        }

        /// <summary>The member after the stream; one of its chunks if the receiver stopped before its end, which the caller refuses.</summary>
        public TarMember? Next() => _ended && chunked is not null ? _after : tar.Next();

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
