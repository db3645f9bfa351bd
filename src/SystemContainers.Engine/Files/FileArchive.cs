using System.Formats.Tar;
using Microsoft.Win32.SafeHandles;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Files;

/// <summary>
/// What the two directions of a file copy share: the archive is PAX tar, the last entry a global
/// header with the outcome ("sc.error", "sc.skipped.N"), since a stream already under way
/// cannot change its HTTP status.
/// </summary>
public static class FileArchive
{
    public const string ContentType = "application/x-tar";
    public const string ErrorKey = "sc.error", SkippedKey = "sc.skipped.", DoneKey = "sc.done";

    /// <summary>An absolute container path split into its directory and last name, refused when it is neither.</summary>
    internal static (string Directory, string Name) Split(string path, string what)
    {
        CheckAbsolute(path, what);
        string trimmed = path.TrimEnd('/');
        int slash = trimmed.LastIndexOf('/');
        if (trimmed.Length == 0 || trimmed[(slash + 1)..] is "." or "..")
            throw EngineException.Invalid("InvalidPath", $"{what} '{path}' must name a file or directory below /");
        return (slash == 0 ? "/" : trimmed[..slash], trimmed[(slash + 1)..]);
    }

    internal static void CheckAbsolute(string path, string what)
    {
        if (string.IsNullOrEmpty(path) || path[0] != '/' || path.Contains('\0'))
            throw EngineException.Invalid("InvalidPath", $"{what} '{path}' must be an absolute path in the container");
    }

    internal static string Join(string directory, string name) => directory == "/" ? "/" + name : directory + "/" + name;

    /// <summary>A readable or writable stream over an owned fd, which it takes.</summary>
    internal static FileStream StreamOf(SafeFd fd, FileAccess access)
    {
        var handle = new SafeFileHandle(fd.DangerousGetHandle(), ownsHandle: true);
        fd.SetHandleAsInvalid();
        return new FileStream(handle, access, 0);
    }

    internal static string KindOf(uint type) => type switch
    {
        At.S_IFIFO => "a fifo",
        At.S_IFCHR => "a character device",
        At.S_IFBLK => "a block device",
        At.S_IFSOCK => "a socket",
        _ => "a special file",
    };

    internal static string KindOf(TarEntryType type) => type switch
    {
        TarEntryType.Fifo => "a fifo",
        TarEntryType.CharacterDevice => "a character device",
        TarEntryType.BlockDevice => "a block device",
        TarEntryType.HardLink => "a hard link",
        _ => $"a {type} entry",
    };
}
