using System.Formats.Tar;
using System.IO.Enumeration;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Files;

/// <summary>
/// Files read out of a container as a tar stream. The sources (a path, or a * and ? pattern in
/// its last name) are resolved when it is opened, so a missing one is an error before anything
/// is sent. Nothing is ever followed: a symlink goes as its target text, a directory is walked
/// one name at a time below its fd, and a fifo, device or socket is skipped, never opened
/// (regular files are opened non-blocking and checked again on the fd).
/// </summary>
public sealed class FilePull : IDisposable
{
    private const int MaxDepth = 256;
    private readonly ContainerRoot _root;
    private readonly List<(SafeFd Parent, string Name, string Path)> _sources;
    private readonly List<string> _skipped = [];

    private FilePull(ContainerRoot root, List<(SafeFd, string, string)> sources)
    {
        _root = root;
        _sources = sources;
    }

    internal static FilePull Open(ContainerRoot root, string path, bool recurse)
    {
        var (dir, pattern) = FileArchive.Split(path, "path");
        var sources = new List<(SafeFd, string, string)>();
        var parent = root.Open(dir, Libc.O_RDONLY | Libc.O_DIRECTORY);
        try
        {
            var names = pattern.AsSpan().IndexOfAny('*', '?') < 0 ? [pattern] : Matching(parent, pattern);
            if (names.Count == 0) throw EngineException.NotFound("FileNotFound", $"nothing matches '{path}' in container '{root.Container}'");
            foreach (var name in names)
            {
                string shown = FileArchive.Join(dir, name);
                FileIdentity id;
                try { id = At.Stat(parent.Fd, name, shown); }
                catch (NativeException e) { throw root.Refusal(e.Errno, "read", shown); }
                if (id.IsDirectory && !recurse)
                    throw EngineException.Invalid("IsADirectory", $"'{shown}' in container '{root.Container}' is a directory; use -Recurse to copy it");
                if (!id.IsDirectory && !id.IsRegular && !id.IsSymlink)
                    throw new EngineException(FailureKind.Forbidden, "SpecialFile", $"'{shown}' in container '{root.Container}' is {FileArchive.KindOf(id.Type)}, which is never copied");
                sources.Add((parent, name, shown));
            }
            return new FilePull(root, sources);
        }
        catch
        {
            parent.Dispose();
            throw;
        }
    }

    private static List<string> Matching(SafeFd dir, string pattern) =>
        At.Names(dir).Where(n => FileSystemName.MatchesSimpleExpression(pattern, n, ignoreCase: false)).Order(StringComparer.Ordinal).ToList();

    /// <summary>Writes the archive; a failure once it is under way goes in its closing header, naming the path.</summary>
    public async Task WriteAsync(Stream output, CancellationToken ct)
    {
        var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        await using (tar)
        {
            string? error = null;
            try
            {
                foreach (var (parent, name, path) in _sources) await AddAsync(tar, parent, name, name, path, 0, ct);
            }
            catch (Exception e) when (e is EngineException or NativeException)
            {
                error = e.Message;
            }
            var outcome = new Dictionary<string, string> { [FileArchive.DoneKey] = "1" };
            if (error is not null) outcome[FileArchive.ErrorKey] = error;
            for (int i = 0; i < _skipped.Count; i++) outcome[FileArchive.SkippedKey + i] = _skipped[i];
            await tar.WriteEntryAsync(new PaxGlobalExtendedAttributesTarEntry(outcome), ct);
        }
    }

    private async Task AddAsync(TarWriter tar, SafeFd dir, string name, string entryName, string path, int depth, CancellationToken ct)
    {
        FileIdentity id;
        try { id = At.Stat(dir.Fd, name, path); }
        catch (NativeException e) when (e.Errno == Libc.ENOENT)
        {
            _skipped.Add($"{path}: removed while it was copied");
            return;
        }
        if (id.IsRegular)
        {
            using var fd = _root.OpenBelow(dir, name, Libc.O_RDONLY | Libc.O_NOFOLLOW | Libc.O_NONBLOCK | Libc.O_NOCTTY, path);
            var opened = At.Stat(fd.Fd, "", path);
            if (!opened.IsRegular)
            {
                _skipped.Add($"{path}: became {FileArchive.KindOf(opened.Type)} while it was copied");
                return;
            }
            await using var data = new FixedLengthStream(FileArchive.StreamOf(fd, FileAccess.Read), opened.Size, path);
            await tar.WriteEntryAsync(Entry(TarEntryType.RegularFile, entryName, opened, data), ct);
            if (data.Problem is not null) _skipped.Add(data.Problem);
        }
        else if (id.IsSymlink)
        {
            var entry = Entry(TarEntryType.SymbolicLink, entryName, id, null);
            entry.LinkName = At.ReadLink(dir.Fd, name, path);
            await tar.WriteEntryAsync(entry, ct);
        }
        else if (id.IsDirectory)
        {
            if (depth >= MaxDepth) throw EngineException.Invalid("TreeTooDeep", $"'{path}' in container '{_root.Container}' is more than {MaxDepth} directories deep");
            using var sub = _root.OpenBelow(dir, name, Libc.O_RDONLY | Libc.O_DIRECTORY, path);
            await tar.WriteEntryAsync(Entry(TarEntryType.Directory, entryName, At.Stat(sub.Fd, "", path), null), ct);
            foreach (var child in At.Names(sub).Order(StringComparer.Ordinal))
                await AddAsync(tar, sub, child, entryName + "/" + child, FileArchive.Join(path, child), depth + 1, ct);
        }
        else _skipped.Add($"{path}: {FileArchive.KindOf(id.Type)}, never copied");
    }

    private PaxTarEntry Entry(TarEntryType type, string name, FileIdentity id, Stream? data)
    {
        var entry = new PaxTarEntry(type, name)
        {
            Uid = (int)_root.ContainerUid(id.Uid),
            Gid = (int)_root.ContainerGid(id.Gid),
            Mode = (UnixFileMode)(id.Mode & 0xfff),
        };
        if (data is not null) entry.DataStream = data;
        return entry;
    }

    public void Dispose()
    {
        foreach (var parent in _sources.Select(s => s.Parent).Distinct()) parent.Dispose();
        _root.Dispose();
    }
}
