using System.Formats.Tar;
using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Files;

/// <summary>What a push wrote, and what it left out (fifos, devices, hard links).</summary>
public sealed record FilePushResult(int Files, int Directories, int Links, long Bytes, IReadOnlyList<string> Skipped);

/// <summary>
/// Files written into a container from a tar stream. The destination is an existing directory
/// (the archive's items go inside it) or a new name for the archive's one item, whose directory
/// must exist (-Force makes it). Every entry is created through its parent's fd, found below the
/// destination without following any symlink (one the archive itself made included); a file or
/// link is written under a temporary name and renamed into place, so none is ever half-written,
/// and an existing one is replaced only with force. Owners are shifted through the id map and
/// set on the fd. Device nodes and fifos are never created.
/// </summary>
internal sealed class FilePush(ContainerRoot root, string destination, bool force)
{
    // No O_NOFOLLOW: RESOLVE_NO_SYMLINKS refuses a final link too, with ELOOP rather than ENOTDIR.
    private const int DirFlags = Libc.O_RDONLY | Libc.O_DIRECTORY;
    private readonly List<string> _skipped = [];
    // One for the whole push: a buffer of its own per file made a tree of 10,000 small files allocate 10 GB.
    private readonly byte[] _buffer = new byte[1 << 20];
    private int _files, _directories, _links;
    private long _bytes;

    public async Task<FilePushResult> ReadAsync(Stream input, CancellationToken ct)
    {
        var (target, targetPath, rename) = Target();
        using (target)
        {
            string? firstItem = null;
            SafeFd? cached = null;
            string cachedPath = "";
            try
            {
                await using var reader = new TarReader(input, leaveOpen: true);
                while (await reader.GetNextEntryAsync(copyData: false, ct) is { } entry)
                {
                    if (entry.EntryType == TarEntryType.GlobalExtendedAttributes) continue;
                    var parts = NameParts(entry.Name);
                    if (rename is not null)
                    {
                        firstItem ??= parts[0];
                        if (parts[0] != firstItem)
                            throw EngineException.Invalid("NotADirectory",
                                $"destination '{destination}' in container '{root.Container}' is not a directory, so it takes one item, not also '{parts[0]}'");
                        parts[0] = rename;
                    }
                    string parentRel = string.Join('/', parts[..^1]);
                    string path = FileArchive.Join(targetPath, string.Join('/', parts));
                    SafeFd parent = target;
                    if (parentRel.Length > 0)
                    {
                        if (cached is null || cachedPath != parentRel)
                        {
                            cached?.Dispose();
                            cached = null;
                            cached = root.OpenBelow(target, parentRel, DirFlags, FileArchive.Join(targetPath, parentRel));
                            cachedPath = parentRel;
                        }
                        parent = cached;
                    }
                    await CreateAsync(parent, parts[^1], path, entry, ct);
                }
            }
            finally
            {
                cached?.Dispose();
            }
        }
        return new FilePushResult(_files, _directories, _links, _bytes, _skipped);
    }

    /// <summary>The directory the archive's items go in, its path, and the new name of the one item when the destination is not a directory.</summary>
    private (SafeFd Dir, string Path, string? Rename) Target()
    {
        FileArchive.CheckAbsolute(destination, "destination");
        try
        {
            return (root.Open(destination, Libc.O_RDONLY | Libc.O_DIRECTORY), destination.Length == 1 ? "/" : destination.TrimEnd('/'), null);
        }
        catch (EngineException e) when (e.Reason is "FileNotFound" or "NotADirectory")
        {
        }
        var (dir, name) = FileArchive.Split(destination, "destination");
        try
        {
            return (root.Open(dir, Libc.O_RDONLY | Libc.O_DIRECTORY), dir, name);
        }
        catch (EngineException e) when (e.Reason == "FileNotFound")
        {
            if (!force)
                throw EngineException.NotFound("DirectoryNotFound", $"destination directory '{dir}' does not exist in container '{root.Container}'; use -Force to create it");
        }
        return (MakeDirectories(dir), dir, name);
    }

    /// <summary>Makes the missing directories of path, as the container's root, mode 0755.</summary>
    private SafeFd MakeDirectories(string path)
    {
        var dir = root.Open("/", Libc.O_RDONLY | Libc.O_DIRECTORY);
        string sofar = "";
        try
        {
            foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                sofar += "/" + part;
                SafeFd next;
                try { next = root.Open(sofar, Libc.O_RDONLY | Libc.O_DIRECTORY); }
                catch (EngineException e) when (e.Reason == "FileNotFound")
                {
                    if (At.mkdirat(dir.Fd, part, 0x1ed) < 0 && Marshal.GetLastPInvokeError() != Libc.EEXIST)
                        throw root.Refusal(Marshal.GetLastPInvokeError(), "mkdir", sofar);
                    next = root.OpenBelow(dir, part, DirFlags, sofar);
                    Own(next, 0, 0, sofar);
                }
                dir.Dispose();
                dir = next;
            }
            return dir;
        }
        catch
        {
            dir.Dispose();
            throw;
        }
    }

    private static string[] NameParts(string name)
    {
        var parts = name.TrimEnd('/').Split('/');
        if (name.StartsWith('/') || parts.Any(p => p is "" or "." or "..") || name.Contains('\0'))
            throw EngineException.Invalid("InvalidArchive", $"archive entry '{name}' is not a plain relative path");
        return parts;
    }

    private async Task CreateAsync(SafeFd parent, string name, string path, TarEntry entry, CancellationToken ct)
    {
        switch (entry.EntryType)
        {
            case TarEntryType.Directory:
                if (At.mkdirat(parent.Fd, name, 0x1c0) < 0 && Marshal.GetLastPInvokeError() != Libc.EEXIST)
                    throw root.Refusal(Marshal.GetLastPInvokeError(), "mkdir", path);
                using (var dir = root.OpenBelow(parent, name, DirFlags, path))
                {
                    Own(dir, entry.Uid, entry.Gid, path);
                    Mode(dir, entry.Mode, path);
                }
                _directories++;
                break;
            case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                CheckReplaceable(parent, name, path);
                await PlaceAsync(parent, name, path, async temp =>
                {
                    using var fd = root.OpenBelow(parent, temp, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW, path, 0x180);
                    Own(fd, entry.Uid, entry.Gid, path);
                    Mode(fd, entry.Mode, path);
                    await using var file = FileArchive.StreamOf(fd, FileAccess.Write);
                    if (entry.DataStream is { } data)
                    {
                        for (int n; (n = await data.ReadAsync(_buffer, ct)) > 0;)
                        {
                            try { await file.WriteAsync(_buffer.AsMemory(0, n), ct); }
                            // The container's file system refused the data (EDQUOT past limits.disk, ENOSPC):
                            // a refusal the daemon answers once it has read the rest of the upload, not a
                            // server error that resets a client still sending. .NET's HResult is the errno.
                            catch (IOException e) when (e.HResult > 0) { throw root.Refusal(e.HResult, "write", path); }
                        }
                    }
                    _bytes += file.Length;
                });
                _files++;
                break;
            case TarEntryType.SymbolicLink:
                CheckReplaceable(parent, name, path);
                await PlaceAsync(parent, name, path, temp =>
                {
                    if (At.symlinkat(entry.LinkName, parent.Fd, temp) < 0) throw root.Refusal(Marshal.GetLastPInvokeError(), "symlink", path);
                    if (At.fchownat(parent.Fd, temp, root.HostUid(entry.Uid, path), root.HostGid(entry.Gid, path), At.AT_SYMLINK_NOFOLLOW) < 0)
                        throw root.Refusal(Marshal.GetLastPInvokeError(), "chown", path);
                    return Task.CompletedTask;
                });
                _links++;
                break;
            default:
                _skipped.Add($"{path}: {FileArchive.KindOf(entry.EntryType)}, never created");
                break;
        }
    }

    /// <summary>Refuses early what the rename would refuse late: an existing directory, or any existing file without force.</summary>
    private void CheckReplaceable(SafeFd parent, string name, string path)
    {
        FileIdentity id;
        try { id = At.Stat(parent.Fd, name, path); }
        catch (NativeException e) when (e.Errno == Libc.ENOENT) { return; }
        if (id.IsDirectory) throw EngineException.Conflict("IsADirectory", $"'{path}' in container '{root.Container}' is a directory, which a file cannot replace");
        if (!force) throw root.Refusal(Libc.EEXIST, "create", path);
    }

    /// <summary>Makes the file under a temporary name, then renames it into place; a failure removes it.</summary>
    private async Task PlaceAsync(SafeFd parent, string name, string path, Func<string, Task> make)
    {
        string temp = $".sc-copy-{Guid.NewGuid():N}";
        try
        {
            await make(temp);
            if (At.renameat2(parent.Fd, temp, parent.Fd, name, force ? 0 : At.RENAME_NOREPLACE) < 0)
                throw root.Refusal(Marshal.GetLastPInvokeError(), "rename into", path);
        }
        catch
        {
            At.unlinkat(parent.Fd, temp, 0);
            throw;
        }
    }

    private void Own(SafeFd fd, long uid, long gid, string path)
    {
        if (Libc.fchown(fd.Fd, root.HostUid(uid, path), root.HostGid(gid, path)) < 0) throw root.Refusal(Marshal.GetLastPInvokeError(), "chown", path);
    }

    /// <summary>After the owner: a chown clears the set-id bits.</summary>
    private void Mode(SafeFd fd, UnixFileMode mode, string path)
    {
        if (At.fchmod(fd.Fd, (int)mode & 0xfff) < 0) throw root.Refusal(Marshal.GetLastPInvokeError(), "chmod", path);
    }
}
