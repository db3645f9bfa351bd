using System.Globalization;
using System.Text;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A container's root as an image tarball, laid out as the image builders make theirs (tar of
/// ".", numeric owners, xattrs and ACLs, sorted names, so the same tree gives the same bytes).
/// Owners are the container's own ids: where the tree holds host ids (an overlay upper layer of an
/// unprivileged container), GNU tar's owner and group maps move each id of the container's range
/// back to 0..size-1; the image's own ids lie below any range and are left as they are.
/// </summary>
internal static class RootTarball
{
    public static void Write(string tree, string tarball, IdMap? hostIds, string scratch)
    {
        var argv = new List<string>
        {
            "tar", "--create", "--file", tarball, "--directory", tree, "--numeric-owner",
            "--xattrs", "--xattrs-include=*", "--acls", "--sort=name",
        };
        if (hostIds is not null)
        {
            argv.Add("--owner-map=" + MapFile(Path.Combine(scratch, "uid-map"), hostIds.UidBase, hostIds.Size));
            argv.Add("--group-map=" + MapFile(Path.Combine(scratch, "gid-map"), hostIds.GidBase, hostIds.Size));
        }
        argv.Add(".");
        var (code, error) = Sys.Run("/usr/bin/tar", argv, "");
        if (code != 0)
            throw new EngineException(FailureKind.Failed, "PublishFailed", $"cannot write {tree} to {tarball}: tar exit {code}: {error}");
    }

    /// <summary>tar's map file: one "+HOST +CONTAINER" line per id of the range.</summary>
    private static string MapFile(string path, long hostBase, long size)
    {
        var text = new StringBuilder();
        for (long id = 0; id < size; id++)
            text.Append('+').Append((hostBase + id).ToString(CultureInfo.InvariantCulture)).Append(" +").Append(id.ToString(CultureInfo.InvariantCulture)).Append('\n');
        File.WriteAllText(path, text.ToString());
        return path;
    }
}
