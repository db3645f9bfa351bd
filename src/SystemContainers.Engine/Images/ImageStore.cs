using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Unpacked images under &lt;state&gt;/images/&lt;fingerprint&gt;/{rootfs,image.json}. An image is
/// unpacked once and shared read-only by every container made from it.
/// </summary>
public sealed partial class ImageStore
{
    private readonly string _dir;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Dictionary<string, ImageRecord> _images = new(StringComparer.Ordinal);

    private readonly ImportLimits _limits;

    public ImageStore(string stateDir, ImportLimits? limits = null)
    {
        _limits = limits ?? ImportLimits.Default;
        _dir = Path.Combine(stateDir, "images");
        Directory.CreateDirectory(_dir);
        // Imports and removals that died half-way: nothing refers to them.
        Recovery.ReclaimStaging(_dir);
        Recovery.ReclaimTempFiles(_dir);
        foreach (var d in Directory.EnumerateDirectories(_dir))
        {
            string name = Path.GetFileName(d);
            string meta = Path.Combine(d, "image.json");
            if (!File.Exists(meta)) continue;
            try
            {
                _images[name] = StateStore.Read<ImageRecord>(meta, ImageRecord.CurrentSchema, r => r.SchemaVersion);
            }
            catch (EngineException e)
            {
                EngineLog.Write($"image {name} is damaged and kept as it is: {e.Message}");
            }
        }
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\\z")]
    private static partial Regex AliasPattern();

    public IReadOnlyList<ImageRecord> List()
    {
        lock (_images) return _images.Values.OrderBy(i => i.Created).ToList();
    }

    public string RootfsOf(string fingerprint) => Path.Combine(_dir, fingerprint, "rootfs");

    /// <summary>Finds an image by alias, full fingerprint or unique fingerprint prefix (at least 12 characters).</summary>
    public ImageRecord Resolve(string reference)
    {
        lock (_images)
        {
            var byAlias = _images.Values.FirstOrDefault(i => i.Aliases.Contains(reference));
            if (byAlias is not null) return byAlias;
            if (_images.TryGetValue(reference, out var exact)) return exact;
            if (reference.Length >= 12)
            {
                var matches = _images.Values.Where(i => i.Fingerprint.StartsWith(reference, StringComparison.Ordinal)).ToList();
                if (matches.Count == 1) return matches[0];
                if (matches.Count > 1)
                    throw EngineException.Invalid("AmbiguousImage", $"image reference '{reference}' matches {matches.Count} images");
            }
        }
        throw EngineException.NotFound("ImageNotFound", $"image '{reference}' not found");
    }

    /// <summary>
    /// Imports a rootfs tarball (plain, gzip, xz, zstd or bzip2) with owners, modes, links and xattrs;
    /// device nodes and other special members are dropped and listed in the record.
    /// </summary>
    public async Task<ImageRecord> ImportAsync(string path, string? alias, string description, IProgress<string>? progress, CancellationToken ct)
    {
        if (alias is not null) ValidateAlias(alias);
        if (!File.Exists(path))
            throw EngineException.NotFound("ImageFileNotFound", $"image file '{path}' not found");
        await using var file = File.OpenRead(path);
        return await ImportAsync(file, path, null, alias, description, progress, ct);
    }

    /// <summary>
    /// Imports the tarball read from source (named origin in messages). It is copied into the
    /// image's directory first, hashed on the way, and the copy is what is unpacked and kept
    /// (<see cref="TarballOf"/>), so the fingerprint names exactly the bytes unpacked. With
    /// expectedFingerprint, bytes that hash to anything else are refused. Whatever fails leaves no
    /// trace in the store.
    /// </summary>
    public async Task<ImageRecord> ImportAsync(Stream source, string origin, string? expectedFingerprint, string? alias, string description,
        IProgress<string>? progress, CancellationToken ct)
    {
        if (alias is not null) ValidateAlias(alias);
        string staging = Path.Combine(_dir, $".import-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(staging);
            string tarball = Path.Combine(staging, TarballName);
            string fingerprint = await CopyHashingAsync(source, tarball, origin, progress, ct);
            TestHooks.Reach("import-received");
            if (expectedFingerprint is not null && fingerprint != expectedFingerprint)
                throw EngineException.Invalid("ChecksumMismatch", $"the image received from {origin} has SHA-256 {fingerprint}, not the fingerprint {expectedFingerprint} asked for");
            await _lock.WaitAsync(ct);
            try
            {
                CheckAliasFree(alias, fingerprint);
                lock (_images)
                {
                    if (_images.TryGetValue(fingerprint, out var existing))
                    {
                        TreeRemover.Remove(staging);
                        return alias is null || existing.Aliases.Contains(alias) ? existing : Save(existing with { Aliases = [.. existing.Aliases, alias] });
                    }
                }
                string rootfs = Path.Combine(staging, "rootfs");
                Directory.CreateDirectory(rootfs);
                progress?.Report("unpacking");
                var unpacked = await Task.Run(() => Unpack(tarball, origin, rootfs, ct), ct);
                string init = RootfsInspector.InitKind(rootfs);
                if (init.Length == 0)
                    throw EngineException.Invalid("InvalidImage", $"tarball {origin} is not a root file system: it has no /sbin/init");
                var dropped = unpacked.DroppedDeviceNodes;
                if (dropped.Count > 0) progress?.Report($"dropped {dropped.Count} device node(s): {string.Join(", ", dropped)}");
                if (unpacked.DroppedEntries.Count > 0)
                    progress?.Report($"dropped {unpacked.DroppedEntries.Count} other entries: {string.Join(", ", unpacked.DroppedEntries)}");
                var record = new ImageRecord(fingerprint, alias is null ? [] : [alias], description,
                    DateTimeOffset.UtcNow, new FileInfo(tarball).Length, init, dropped.Count > 0 ? dropped : null,
                    unpacked.DroppedEntries.Count > 0 ? unpacked.DroppedEntries : null);
                WriteRecord(staging, record);
                TestHooks.Reach("import-unpacked");
                Directory.Move(staging, Path.Combine(_dir, fingerprint));
                lock (_images) _images[fingerprint] = record;
                return record;
            }
            finally
            {
                _lock.Release();
            }
        }
        catch
        {
            TreeRemover.Remove(staging);
            throw;
        }
    }

    /// <summary>
    /// Makes an image from the tarball write puts in the scratch directory it is given (a
    /// container's root), imported as any tarball is, so its fingerprint is the tarball's SHA-256.
    /// The scratch directory is a dot name in the store, reclaimed at a daemon start, and removed
    /// once the image is made or has failed.
    /// </summary>
    public async Task<ImageRecord> PublishAsync(Func<string, CancellationToken, Task<string>> write, string alias, string description, IProgress<string>? progress, CancellationToken ct)
    {
        ValidateAlias(alias);
        CheckAliasFree(alias, "");
        string scratch = Path.Combine(_dir, $".publish-{Guid.NewGuid():N}");
        try
        {
            MakePrivate(scratch);
            progress?.Report("writing the root file system");
            string tarball = await write(scratch, ct);
            TestHooks.Reach("publish-written");
            return await ImportAsync(tarball, alias, description, progress, ct);
        }
        finally
        {
            TreeRemover.Remove(scratch);
        }
    }

    /// <summary>A directory only root can enter: a published root holds setuid files and unshifted owners.</summary>
    private static void MakePrivate(string path) =>
        Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

    /// <summary>
    /// The tarball an image was imported from, kept beside its rootfs so the image can be sent to
    /// another host byte for byte (its SHA-256 is the fingerprint).
    /// </summary>
    public string TarballOf(string reference)
    {
        var image = Resolve(reference);
        string path = Path.Combine(_dir, image.Fingerprint, TarballName);
        if (!File.Exists(path))
            throw EngineException.Conflict("NoTarball", $"image {image.Fingerprint[..12]} was imported before images kept their tarball ({path} is missing); import it again to send it");
        return path;
    }

    private const string TarballName = "tarball";

    private async Task<string> CopyHashingAsync(Stream source, string destination, string origin, IProgress<string>? progress, CancellationToken ct)
    {
        // The largest tarball the import limits can unpack (member data plus up to three 512-byte
        // headers an entry, pax), so a source streaming without end stops here, not at a full disk.
        long most = _limits.MaxBytes + _limits.MaxEntries * 1536;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        long copied = 0, reported = 0;
        await using var file = new FileStream(destination, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead,
        });
        progress?.Report("copying the tarball");
        while (true)
        {
            int n;
            try
            {
                n = await source.ReadAsync(buffer, ct);
            }
            catch (IOException e) when (!ct.IsCancellationRequested)
            {
                throw EngineException.Invalid("ImageTransferFailed", $"cannot read the image from {origin} after {copied} bytes: {e.Message}");
            }
            if (n == 0) return Convert.ToHexStringLower(hash.GetHashAndReset());
            copied += n;
            if (copied > most)
                throw EngineException.Invalid("InvalidImage", $"the image from {origin} is larger than {most} bytes, more than the import limits can unpack");
            hash.AppendData(buffer, 0, n);
            await file.WriteAsync(buffer.AsMemory(0, n), ct);
            if (copied - reported >= 16 << 20)
            {
                reported = copied;
                progress?.Report($"copied {copied >> 20} MiB");
            }
        }
    }

    /// <summary>Removes an image no container uses; usersOf is asked under the store's lock, with the image's fingerprint.</summary>
    public async Task RemoveAsync(string reference, Func<string, IReadOnlyList<string>> usersOf)
    {
        await _lock.WaitAsync();
        try
        {
            var image = Resolve(reference);
            // One name of several is no way to say "this image": that removal would surprise the other names' users.
            if (image.Aliases.Contains(reference) && image.Aliases.Count > 1)
                throw EngineException.Conflict("ImageHasOtherAliases",
                    $"'{reference}' is one of the aliases of image {image.Fingerprint[..12]} (also {string.Join(", ", image.Aliases.Where(a => a != reference))}): " +
                    "remove that alias alone (Remove-SystemContainerImageAlias), or remove the image by its fingerprint");
            var inUse = usersOf(image.Fingerprint);
            if (inUse.Count > 0)
                throw EngineException.Conflict("ImageInUse",
                    $"image '{reference}' is used by container(s) {string.Join(", ", inUse)}; remove them first");
            string dir = Path.Combine(_dir, image.Fingerprint);
            string doomed = Path.Combine(_dir, $".remove-{image.Fingerprint}");
            Directory.Move(dir, doomed);
            lock (_images) _images.Remove(image.Fingerprint);
            TestHooks.Reach("image-remove-moved");
            TreeRemover.Remove(doomed);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Gives an image one more alias; one that already names another image is refused.</summary>
    public async Task<ImageRecord> AddAliasAsync(string reference, string alias)
    {
        ValidateAlias(alias);
        await _lock.WaitAsync();
        try
        {
            var image = Resolve(reference);
            CheckAliasFree(alias, image.Fingerprint);
            return image.Aliases.Contains(alias) ? image : Save(image with { Aliases = [.. image.Aliases, alias] });
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Takes an alias off its image; the image stays, named by its fingerprint and any other aliases.</summary>
    public async Task<ImageRecord> RemoveAliasAsync(string alias)
    {
        await _lock.WaitAsync();
        try
        {
            ImageRecord? image;
            lock (_images) image = _images.Values.FirstOrDefault(i => i.Aliases.Contains(alias));
            if (image is null) throw EngineException.NotFound("AliasNotFound", $"image alias '{alias}' not found");
            return Save(image with { Aliases = image.Aliases.Where(a => a != alias).ToList() });
        }
        finally
        {
            _lock.Release();
        }
    }

    private void ValidateAlias(string alias)
    {
        if (!AliasPattern().IsMatch(alias))
            throw EngineException.Invalid("InvalidAlias",
                $"image alias '{Spec.DisplayText.Escape(alias)}' is invalid: use letters, digits, '.', '_' and '-' (at most 128 characters)");
    }

    private void CheckAliasFree(string? alias, string fingerprint)
    {
        if (alias is null) return;
        lock (_images)
        {
            var owner = _images.Values.FirstOrDefault(i => i.Aliases.Contains(alias));
            if (owner is not null && owner.Fingerprint != fingerprint)
                throw EngineException.Conflict("AliasInUse", $"image alias '{alias}' already names image {owner.Fingerprint[..12]}");
        }
    }

    private ImageRecord Save(ImageRecord record)
    {
        WriteRecord(Path.Combine(_dir, record.Fingerprint), record);
        lock (_images) _images[record.Fingerprint] = record;
        return record;
    }

    private static void WriteRecord(string dir, ImageRecord record) =>
        Sys.WriteFileAtomic(Path.Combine(dir, "image.json"), JsonSerializer.SerializeToUtf8Bytes(record, StateStore.Json), 0x1a4);

    private ExtractedRootfs Unpack(string path, string origin, string rootfs, CancellationToken ct)
    {
        try
        {
            using var tarball = new DecompressedTarball(path);
            var unpacked = RootfsExtractor.Extract(new TarballReader(tarball.Stream, _limits), rootfs, ct);
            tarball.Finish();
            return unpacked;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw EngineException.Invalid("InvalidImage", $"cannot import tarball {origin}: {e.Message}");
        }
    }
}
