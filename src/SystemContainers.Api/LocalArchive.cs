using System.Formats.Tar;
using System.Runtime.InteropServices;

namespace SystemContainers.Api;

/// <summary>
/// The local side of a file copy: local files as the PAX tar stream the daemon takes, and the
/// daemon's stream written back as local files. The stream's last entry is a global header
/// with the outcome ("sc.done", "sc.error", "sc.skipped.N"), as the daemon writes it.
/// </summary>
public static partial class LocalArchive
{
    public const string ContentType = "application/x-tar";
    private const string DoneKey = "sc.done", ErrorKey = "sc.error", SkippedKey = "sc.skipped.";

    /// <summary>Refuses what cannot be sent before anything is: a missing path, or a directory without recurse.</summary>
    public static void CheckSources(IEnumerable<string> paths, bool recurse)
    {
        foreach (var path in paths)
        {
            var info = new FileInfo(path);
            if (!info.Exists && !Directory.Exists(path) && info.LinkTarget is null) throw new FileNotFoundException($"'{path}' does not exist", path);
            if (info.LinkTarget is null && Directory.Exists(path) && !recurse) throw new IOException($"'{path}' is a directory; use -Recurse to copy it");
        }
    }

    /// <summary>Writes the items (a directory with everything below it; a symlink as a link, never followed).</summary>
    public static async Task WriteAsync(IReadOnlyList<string> paths, Stream output, CancellationToken ct)
    {
        await using var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        foreach (var path in paths) await AddAsync(tar, path, Path.GetFileName(Path.TrimEndingDirectorySeparator(path)), ct);
    }

    private static async Task AddAsync(TarWriter tar, string path, string entryName, CancellationToken ct)
    {
        await tar.WriteEntryAsync(path, entryName, ct);
        if (new FileInfo(path).LinkTarget is not null || !Directory.Exists(path)) return;
        foreach (var child in Directory.EnumerateFileSystemEntries(path).Order(StringComparer.Ordinal))
            await AddAsync(tar, child, entryName + "/" + Path.GetFileName(child), ct);
    }

    /// <summary>
    /// Writes the archive's items at destination: inside it when it is a directory, else as its
    /// new name (its directory must exist unless force). Files and links are written under a
    /// temporary name and renamed into place; an existing one is replaced only with force.
    /// Owners are set when this process may (root). Returns what the daemon or this side skipped.
    /// </summary>
    public static async Task<List<string>> ExtractAsync(Stream input, string destination, bool force, CancellationToken ct)
    {
        string target = destination;
        string? rename = null, firstItem = null;
        if (!Directory.Exists(destination))
        {
            target = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(destination)) ?? "/";
            rename = Path.GetFileName(Path.TrimEndingDirectorySeparator(destination));
            if (!Directory.Exists(target))
            {
                if (!force) throw new DirectoryNotFoundException($"destination directory '{target}' does not exist; use -Force to create it");
                Directory.CreateDirectory(target);
            }
        }
        var skipped = new List<string>();
        var directories = new List<(string Path, TarEntry Entry)>();
        var links = new List<(string Path, TarEntry Entry)>();
        bool done = false;
        await using (var reader = new TarReader(input, leaveOpen: true))
        {
            while (await reader.GetNextEntryAsync(copyData: false, ct) is { } entry)
            {
                if (entry is PaxGlobalExtendedAttributesTarEntry outcome)
                {
                    var attrs = outcome.GlobalExtendedAttributes;
                    skipped.AddRange(attrs.Where(a => a.Key.StartsWith(SkippedKey, StringComparison.Ordinal)).Select(a => a.Value));
                    if (attrs.TryGetValue(ErrorKey, out var error)) throw new SystemContainersApiException(500, "FileCopyFailed", error);
                    done = attrs.ContainsKey(DoneKey);
                    continue;
                }
                var parts = entry.Name.TrimEnd('/').Split('/');
                if (entry.Name.StartsWith('/') || parts.Any(p => p is "" or "." or ".."))
                    throw new SystemContainersApiException(502, "InvalidArchive", $"archive entry '{entry.Name}' is not a plain relative path");
                if (rename is not null)
                {
                    firstItem ??= parts[0];
                    if (parts[0] != firstItem) throw new IOException($"destination '{destination}' is not a directory, so it takes one item, not also '{parts[0]}'");
                    parts[0] = rename;
                }
                string path = Path.Combine([target, .. parts]);
                switch (entry.EntryType)
                {
                    case TarEntryType.Directory:
                        if (File.Exists(path) || new FileInfo(path).LinkTarget is not null) throw new IOException($"'{path}' exists and is not a directory");
                        Directory.CreateDirectory(path);
                        directories.Add((path, entry));
                        break;
                    case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                        CheckReplaceable(path, force);
                        await PlaceAsync(path, force, entry, async temp =>
                        {
                            await using var file = new FileStream(temp, new FileStreamOptions
                            {
                                Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                            });
                            if (entry.DataStream is { } data) await data.CopyToAsync(file, 1 << 20, ct);
                        });
                        break;
                    case TarEntryType.SymbolicLink:
                        links.Add((path, entry));
                        break;
                    default:
                        skipped.Add($"{entry.Name}: a {entry.EntryType} entry, never created");
                        break;
                }
            }
        }
        if (!done) throw new SystemContainersApiException(502, "ArchiveTruncated", "the daemon's archive ended before its closing header; the copy is incomplete");
        // Links last, so no entry is ever written through one the archive made; directory modes
        // last (deepest first), so a read-only directory does not refuse what goes in it.
        foreach (var (path, entry) in links)
        {
            CheckReplaceable(path, force);
            await PlaceAsync(path, force, entry, temp =>
            {
                File.CreateSymbolicLink(temp, entry.LinkName);
                return Task.CompletedTask;
            }, isLink: true);
        }
        foreach (var (path, entry) in Enumerable.Reverse(directories))
        {
            Own(path, entry);
            File.SetUnixFileMode(path, entry.Mode);
        }
        return skipped;
    }

    private static void CheckReplaceable(string path, bool force)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is null && Directory.Exists(path)) throw new IOException($"'{path}' is a directory, which a file cannot replace");
        if (!force && (info.Exists || info.LinkTarget is not null)) throw new IOException($"'{path}' already exists; use -Force to replace it");
    }

    private static async Task PlaceAsync(string path, bool force, TarEntry entry, Func<string, Task> make, bool isLink = false)
    {
        string temp = Path.Combine(Path.GetDirectoryName(path)!, $".sc-copy-{Guid.NewGuid():N}");
        try
        {
            await make(temp);
            Own(temp, entry);
            if (!isLink) File.SetUnixFileMode(temp, entry.Mode);
            // rename(2) itself: File.Move would follow a link to a directory and refuse it.
            if (renameat2(AtCwd, temp, AtCwd, path, force ? 0 : RenameNoReplace) < 0)
                throw new IOException($"cannot rename '{temp}' to '{path}': errno {Marshal.GetLastPInvokeError()}");
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>The archive's owner, set only by a process that may give files away (root).</summary>
    private static void Own(string path, TarEntry entry)
    {
        if (Environment.IsPrivilegedProcess && lchown(path, entry.Uid, entry.Gid) < 0)
            throw new IOException($"cannot chown '{path}': errno {Marshal.GetLastPInvokeError()}");
    }

    private const int AtCwd = -100;
    private const uint RenameNoReplace = 1;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lchown(string path, int owner, int group);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);
}
