using System.Diagnostics;
using System.IO.Compression;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Reads every entry of a rootfs tarball before anything is written, and refuses entries that
/// could land outside the target: absolute names, ".." components, entries beneath a symlink
/// the same tarball made (the "symlink then write through it" escape), and hardlinks that point
/// outside. Absolute symlink targets themselves are normal in a rootfs and are kept: nothing
/// follows them during extraction.
/// </summary>
public static class TarballValidator
{
    public static int Validate(string path)
    {
        using var stream = Decompress(path, out var decompressor);
        int entries = 0;
        var symlinks = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            foreach (var member in TarScanner.Scan(stream))
            {
                entries++;
                string name = Normalize(member.Name, "entry");
                if (name.Length == 0) continue;
                CheckNotBeneathSymlink(name, symlinks);
                if (member.IsSymlink) symlinks.Add(name);
                else if (member.IsHardlink) CheckNotBeneathSymlink(Normalize(member.LinkName, $"hardlink target of '{member.Name}'"), symlinks);
                else if (member.IsDirectory) symlinks.Remove(name);
            }
            if (decompressor is not null)
            {
                stream.CopyTo(Stream.Null);
                decompressor.WaitForExit();
                if (decompressor.ExitCode != 0)
                    throw Invalid($"cannot decompress {path}: {decompressor.StandardError.ReadToEnd().Trim()}");
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException)
        {
            throw Invalid($"cannot read tarball {path}: {e.Message}");
        }
        finally
        {
            decompressor?.Dispose();
        }
        if (entries == 0) throw Invalid($"tarball {path} has no entries");
        return entries;
    }

    private static string Normalize(string raw, string what)
    {
        if (raw.StartsWith('/'))
            throw Invalid($"tarball {what} '{raw}' is an absolute path and would escape the image root");
        var parts = raw.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToArray();
        if (parts.Contains(".."))
            throw Invalid($"tarball {what} '{raw}' contains '..' and would escape the image root");
        return string.Join('/', parts);
    }

    private static void CheckNotBeneathSymlink(string name, HashSet<string> symlinks)
    {
        for (int i = name.IndexOf('/'); i > 0; i = name.IndexOf('/', i + 1))
            if (symlinks.Contains(name[..i]))
                throw Invalid($"tarball entry '{name}' lies beneath symlink '{name[..i]}' and could escape the image root");
    }

    private static EngineException Invalid(string message) => EngineException.Invalid("InvalidImage", message);

    /// <summary>Detects gzip, xz, zstd and bzip2 by magic bytes; xz, zstd and bzip2 go through the host tools.</summary>
    internal static Stream Decompress(string path, out Process? decompressor)
    {
        decompressor = null;
        var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[6];
        int n = file.ReadAtLeast(magic, 6, throwOnEndOfStream: false);
        file.Position = 0;
        string? tool = null;
        if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b) return new GZipStream(file, CompressionMode.Decompress);
        if (n >= 6 && magic[..6].SequenceEqual(new byte[] { 0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0 })) tool = "xz";
        else if (n >= 4 && magic[..4].SequenceEqual(new byte[] { 0x28, 0xb5, 0x2f, 0xfd })) tool = "zstd";
        else if (n >= 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h') tool = "bzip2";
        if (tool is null) return file;
        file.Dispose();
        var psi = new ProcessStartInfo(tool, ["-dc", path])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            decompressor = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw Invalid($"cannot decompress {path}: '{tool}' is not installed ({e.Message})");
        }
        return decompressor.StandardOutput.BaseStream;
    }
}
