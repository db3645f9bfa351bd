using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Images;

/// <summary>What an import unpacked and what it left out (with the reason in parentheses).</summary>
public sealed record ExtractedRootfs(int Entries, IReadOnlyList<string> DroppedDeviceNodes, IReadOnlyList<string> DroppedEntries);

/// <summary>
/// Unpacks a rootfs tarball into an empty directory, deciding about each member as it creates it,
/// so nothing is checked that is not what is extracted. Every file is made relative to directory
/// fds opened one component at a time with O_NOFOLLOW: no symlink the archive made is ever
/// followed and depth beyond PATH_MAX does not matter. Only directories, regular files, symlinks
/// and hardlinks to regular files this archive made are created, with owners, modes, mtimes and
/// xattrs (file capabilities, ACLs); device nodes, FIFOs (unless asked for), sparse members and
/// other types are dropped and reported, as are trusted.* xattrs (overlayfs reads its own from them).
/// </summary>
public sealed unsafe class RootfsExtractor : IDisposable
{
    /// <summary>Directories nested deeper are refused: each level holds a directory fd while it is filled.</summary>
    public const int MaxDepth = 256;
    private const int FileFlags = Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC;
    private const long UTIME_NOW = (1L << 30) - 1;
    private const int S_IFIFO = 0x1000;

    private readonly SafeFd _root;
    private readonly DirectoryChain _dirs, _linkTargets;
    private readonly HashSet<string> _regular = new(StringComparer.Ordinal);
    private readonly List<(string[] Parts, long Sec, long Nsec)> _dirTimes = [];
    private readonly List<string> _devices = [], _dropped = [];
    private readonly byte[] _buffer = new byte[256 * 1024];

    private readonly long _maxId, _uidShift, _gidShift;
    private readonly bool _fifos;

    private RootfsExtractor(string rootfs, long maxId, long uidShift, long gidShift, bool fifos)
    {
        (_maxId, _uidShift, _gidShift, _fifos) = (maxId, uidShift, gidShift, fifos);
        _root = Sys.Open(rootfs, At.DirFlags);
        _dirs = new DirectoryChain(_root.Fd);
        _linkTargets = new DirectoryChain(_root.Fd);
    }

    /// <summary>
    /// Unpacks every member of tar into rootfs (an empty directory); throws InvalidDataException naming the member that is refused.
    /// Owners must be below maxId: a container's backup holds only ids of its own range. They are
    /// written shifted by uidShift and gidShift (an overlay upper layer holds the container's host ids).
    /// With fifos, FIFOs are made rather than dropped (a container's own root copied on this host).
    /// </summary>
    public static ExtractedRootfs Extract(TarballReader tar, string rootfs, CancellationToken ct = default, long maxId = uint.MaxValue,
        long uidShift = 0, long gidShift = 0, bool fifos = false)
    {
        using var x = new RootfsExtractor(rootfs, maxId, uidShift, gidShift, fifos);
        int entries = 0;
        bool unpackedFile = false;
        while (tar.Next() is TarMember m)
        {
            ct.ThrowIfCancellationRequested();
            entries++;
            try
            {
                x.Create(tar, m);
            }
            catch (NativeException e)
            {
                throw new InvalidDataException($"entry '{Short(m.Name)}': {e.Message}");
            }
            // Once per tree, with the stream's sender still writing: where the crash tests kill a receive midway.
            if (!unpackedFile && m.IsRegular && m.Size > 0)
            {
                unpackedFile = true;
                TestHooks.Reach("tree-file-unpacked");
            }
        }
        x.SetDirectoryTimes();
        if (entries == 0) throw new InvalidDataException("the archive has no entries");
        x._devices.Sort(StringComparer.Ordinal);
        x._dropped.Sort(StringComparer.Ordinal);
        return new ExtractedRootfs(entries, x._devices, x._dropped);
    }

    private void Create(TarballReader tar, TarMember m)
    {
        string[] parts = Split(m.Name, "entry");
        string name = string.Join('/', parts);
        if (m.Sparse) { _dropped.Add($"{name} (sparse file)"); return; }
        switch (m.Type)
        {
            case '3' or '4':
                _devices.Add(name);
                return;
            case '6' when !_fifos:
                _dropped.Add($"{name} (fifo)");
                return;
            case not ('0' or '7' or '1' or '2' or '5' or '6'):
                _dropped.Add($"{name} (type '{m.Type}')");
                return;
        }
        if (m.Uid < 0 || m.Uid >= _maxId || m.Gid < 0 || m.Gid >= _maxId)
            throw new InvalidDataException($"entry '{name}' has owner {m.Uid}:{m.Gid}, beyond the id range");
        m = m with { Uid = m.Uid + _uidShift, Gid = m.Gid + _gidShift };
        if (parts.Length == 0)
        {
            if (!m.IsDirectory) throw new InvalidDataException($"entry '{m.Name}' names the image root but is not a directory");
            SetMetadata(_root.Fd, m, name);
            _dirTimes.Add(([], m.MtimeSeconds, m.MtimeNanoseconds));
            return;
        }
        if (parts.Length > MaxDepth) throw new InvalidDataException($"entry '{Short(name)}' is nested {parts.Length} directories deep, more than {MaxDepth}");
        int parent = _dirs.Open(parts, parts.Length - 1, name);
        string leaf = parts[^1];
        _regular.Remove(name);
        if (m.IsDirectory) CreateDirectory(parent, leaf, parts, m, name);
        else if (m.IsSymlink) CreateSymlink(parent, leaf, m, name);
        else if (m.IsHardlink) CreateHardlink(parent, leaf, m, name);
        else if (m.Type == '6') CreateFifo(parent, leaf, m, name);
        else CreateFile(tar, parent, leaf, m, name);
    }

    private void CreateDirectory(int parent, string leaf, string[] parts, TarMember m, string name)
    {
        if (At.mkdirat(parent, leaf, 0x1c0) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Libc.EEXIST) throw new NativeException(errno, "mkdir", Short(name));
            // A directory again keeps its contents; anything else (a symlink too) is replaced, never followed.
            if (!At.Stat(parent, leaf, Short(name)).IsDirectory)
            {
                Unlink(parent, leaf, name);
                if (At.mkdirat(parent, leaf, 0x1c0) < 0) throw NativeException.FromLastError("mkdir", Short(name));
            }
        }
        using var fd = OpenAt(parent, leaf, At.DirFlags, name);
        SetMetadata(fd.Fd, m, name);
        _dirTimes.Add((parts, m.MtimeSeconds, m.MtimeNanoseconds));
    }

    private void CreateFile(TarballReader tar, int parent, string leaf, TarMember m, string name)
    {
        int raw = At.openat(parent, leaf, FileFlags, 0x180);
        if (raw < 0 && Marshal.GetLastPInvokeError() == Libc.EEXIST)
        {
            Unlink(parent, leaf, name);
            raw = At.openat(parent, leaf, FileFlags, 0x180);
        }
        if (raw < 0) throw NativeException.FromLastError("create", Short(name));
        using var fd = new SafeFd(raw, name: Short(name));
        for (int n; (n = tar.Read(_buffer)) > 0;) Sys.WriteAll(fd, _buffer.AsSpan(0, n));
        SetMetadata(fd.Fd, m, name);
        SetTimes(fd.Fd, null, m, name);
        _regular.Add(name);
    }

    /// <summary>Opened O_NONBLOCK to set its owner, xattrs and mode: a reader's open of a fifo does not wait for a writer then.</summary>
    private void CreateFifo(int parent, string leaf, TarMember m, string name)
    {
        if (At.mknodat(parent, leaf, S_IFIFO | 0x180, 0) < 0)
        {
            if (Marshal.GetLastPInvokeError() != Libc.EEXIST) throw NativeException.FromLastError("mkfifo", Short(name));
            Unlink(parent, leaf, name);
            if (At.mknodat(parent, leaf, S_IFIFO | 0x180, 0) < 0) throw NativeException.FromLastError("mkfifo", Short(name));
        }
        int raw = At.openat(parent, leaf, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_NOFOLLOW | Libc.O_CLOEXEC);
        if (raw < 0) throw NativeException.FromLastError("open fifo", Short(name));
        using var fd = new SafeFd(raw, name: Short(name));
        SetMetadata(fd.Fd, m, name);
        SetTimes(fd.Fd, null, m, name);
    }

    private void CreateSymlink(int parent, string leaf, TarMember m, string name)
    {
        if (m.LinkName.Length == 0 || m.LinkName.Contains('\0'))
            throw new InvalidDataException($"symlink '{Short(name)}' has an empty or NUL-carrying target");
        if (At.symlinkat(m.LinkName, parent, leaf) < 0)
        {
            if (Marshal.GetLastPInvokeError() != Libc.EEXIST) throw NativeException.FromLastError("symlink", Short(name));
            Unlink(parent, leaf, name);
            if (At.symlinkat(m.LinkName, parent, leaf) < 0) throw NativeException.FromLastError("symlink", Short(name));
        }
        if (At.fchownat(parent, leaf, (int)m.Uid, (int)m.Gid, At.AT_SYMLINK_NOFOLLOW) < 0) throw NativeException.FromLastError("chown", Short(name));
        SetTimes(parent, leaf, m, name);
    }

    private void CreateHardlink(int parent, string leaf, TarMember m, string name)
    {
        string[] target = Split(m.LinkName, $"hardlink target of '{Short(name)}'");
        string targetName = string.Join('/', target);
        if (!_regular.Contains(targetName) || targetName == name)
            throw new InvalidDataException($"hardlink '{Short(name)}' points to '{Short(m.LinkName)}', which is not a regular file this archive made");
        int targetParent = _linkTargets.Open(target, target.Length - 1, targetName);
        if (!At.Stat(targetParent, target[^1], Short(targetName)).IsRegular)
            throw new InvalidDataException($"hardlink '{Short(name)}' points to '{Short(m.LinkName)}', which is not a regular file");
        if (At.linkat(targetParent, target[^1], parent, leaf, 0) < 0)
        {
            if (Marshal.GetLastPInvokeError() != Libc.EEXIST) throw NativeException.FromLastError("link", Short(name));
            Unlink(parent, leaf, name);
            if (At.linkat(targetParent, target[^1], parent, leaf, 0) < 0) throw NativeException.FromLastError("link", Short(name));
        }
        _regular.Add(name);
    }

    /// <summary>Owner first (chown clears setuid bits and file capabilities), then xattrs, then the mode.</summary>
    private void SetMetadata(int fd, TarMember m, string name)
    {
        if (Libc.fchown(fd, (int)m.Uid, (int)m.Gid) < 0) throw NativeException.FromLastError("chown", Short(name));
        foreach (var (key, value) in m.Xattrs)
        {
            if (key.StartsWith("trusted.", StringComparison.Ordinal))
            {
                _dropped.Add($"{name} (xattr {key})");
                continue;
            }
            fixed (byte* v = value)
                if (At.fsetxattr(fd, key, v, value.Length, 0) < 0) throw NativeException.FromLastError($"set xattr {key} on", Short(name));
        }
        if (At.fchmod(fd, m.Mode) < 0) throw NativeException.FromLastError("chmod", Short(name));
    }

    private static void SetTimes(int fd, string? leaf, TarMember m, string name)
    {
        long* times = stackalloc long[] { 0, UTIME_NOW, m.MtimeSeconds, m.MtimeNanoseconds };
        int rc = leaf is null ? At.futimens(fd, times) : At.utimensat(fd, leaf, times, At.AT_SYMLINK_NOFOLLOW);
        if (rc < 0) throw NativeException.FromLastError("set times of", Short(name));
    }

    /// <summary>Directory mtimes last: every member created inside one changed it.</summary>
    private void SetDirectoryTimes()
    {
        long* times = stackalloc long[4];
        foreach (var (parts, sec, nsec) in _dirTimes)
        {
            string name = string.Join('/', parts);
            int fd = _dirs.Open(parts, parts.Length, name);
            (times[0], times[1], times[2], times[3]) = (0, UTIME_NOW, sec, nsec);
            if (At.futimens(fd, times) < 0) throw new InvalidDataException($"entry '{Short(name)}': {NativeException.FromLastError("set times of", Short(name)).Message}");
        }
    }

    /// <summary>Removes a non-directory an earlier member made at this name; a directory is never replaced.</summary>
    private static void Unlink(int parent, string leaf, string name)
    {
        if (At.unlinkat(parent, leaf, 0) == 0) return;
        int errno = Marshal.GetLastPInvokeError();
        if (errno is At.EISDIR or At.EPERM) throw new InvalidDataException($"entry '{Short(name)}' would replace a directory");
        throw new NativeException(errno, "replace", Short(name));
    }

    private static SafeFd OpenAt(int parent, string leaf, int flags, string name)
    {
        int fd = At.openat(parent, leaf, flags);
        if (fd < 0) throw NativeException.FromLastError("open", Short(name));
        return new SafeFd(fd, name: Short(name));
    }

    /// <summary>A member name as components: absolute names, "..", and NUL bytes are refused; "." and empty components vanish.</summary>
    private static string[] Split(string raw, string what)
    {
        if (raw.StartsWith('/'))
            throw new InvalidDataException($"{what} '{Short(raw)}' is an absolute path and would escape the image root");
        if (raw.Contains('\0')) throw new InvalidDataException($"{what} '{Short(raw)}' contains a NUL byte");
        var parts = raw.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();
        if (parts.Contains(".."))
            throw new InvalidDataException($"{what} '{Short(raw)}' contains '..' and would escape the image root");
        return parts;
    }

    /// <summary>Names in messages are cut short: a path beyond PATH_MAX helps nobody in an error.</summary>
    private static string Short(string name) => name.Length <= 200 ? name : $"{name[..120]}...{name[^60..]}";

    public void Dispose()
    {
        _linkTargets.Dispose();
        _dirs.Dispose();
        _root.Dispose();
    }

    /// <summary>
    /// The open directories from the root down to the last parent used: tar members come grouped
    /// by directory, so most members reopen nothing. Missing components are made 0755 root:root
    /// (GNU tar does the same); one that is not a directory refuses the member.
    /// </summary>
    private sealed class DirectoryChain(int root) : IDisposable
    {
        private readonly List<(string Name, SafeFd Fd)> _open = [];

        public int Open(string[] parts, int count, string member)
        {
            int keep = 0;
            while (keep < _open.Count && keep < count && _open[keep].Name == parts[keep]) keep++;
            while (_open.Count > keep)
            {
                _open[^1].Fd.Dispose();
                _open.RemoveAt(_open.Count - 1);
            }
            for (int i = keep; i < count; i++)
            {
                int parent = i == 0 ? root : _open[i - 1].Fd.Fd;
                int fd = At.openat(parent, parts[i], At.DirFlags);
                if (fd < 0 && Marshal.GetLastPInvokeError() == Libc.ENOENT)
                {
                    if (At.mkdirat(parent, parts[i], 0x1ed) < 0 && Marshal.GetLastPInvokeError() != Libc.EEXIST)
                        throw NativeException.FromLastError("mkdir", Short(string.Join('/', parts[..(i + 1)])));
                    fd = At.openat(parent, parts[i], At.DirFlags);
                }
                if (fd < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    string dir = Short(string.Join('/', parts[..(i + 1)]));
                    if (errno is At.ELOOP or At.ENOTDIR)
                        throw new InvalidDataException($"entry '{Short(member)}' lies beneath '{dir}', which is not a directory (a symlink is never followed)");
                    throw new NativeException(errno, "open", dir);
                }
                _open.Add((parts[i], new SafeFd(fd)));
            }
            return count == 0 ? root : _open[count - 1].Fd.Fd;
        }

        public void Dispose()
        {
            foreach (var (_, fd) in _open) fd.Dispose();
            _open.Clear();
        }
    }
}
