using System.Diagnostics;
using System.IO.Compression;

namespace SystemContainers.Engine.Images;

/// <summary>
/// The tar stream inside a tarball file: plain, gzip (in process), or xz, zstd and bzip2 through the
/// host tool, which only feeds bytes. Disposing ends the tool if the import stopped early.
/// </summary>
public sealed class DecompressedTarball : IDisposable
{
    private readonly Process? _tool;

    public Stream Stream { get; }

    public DecompressedTarball(string path)
    {
        var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[6];
        int n = file.ReadAtLeast(magic, 6, throwOnEndOfStream: false);
        file.Position = 0;
        string? tool = null;
        if (n >= 6 && magic[..6].SequenceEqual(new byte[] { 0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0 })) tool = "xz";
        else if (n >= 4 && magic[..4].SequenceEqual(new byte[] { 0x28, 0xb5, 0x2f, 0xfd })) tool = "zstd";
        else if (n >= 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h') tool = "bzip2";
        if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        {
            Stream = new GZipStream(file, CompressionMode.Decompress);
            return;
        }
        if (tool is null)
        {
            Stream = file;
            return;
        }
        file.Dispose();
        var psi = new ProcessStartInfo(tool, ["-dc", path])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            _tool = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw EngineException.Invalid("InvalidImage", $"cannot decompress {path}: '{tool}' is not installed ({e.Message})");
        }
        Stream = _tool.StandardOutput.BaseStream;
    }

    /// <summary>
    /// After the last member: reads the rest (tar pads to whole records), so a corrupt tail or a
    /// failed decompressor is an error too; more than a little after the end is refused, not read.
    /// </summary>
    public void Finish()
    {
        const int MaxTrailer = 1 << 20;
        var buf = new byte[64 * 1024];
        long trailer = 0;
        for (int n; (n = Stream.Read(buf)) > 0;)
            if ((trailer += n) > MaxTrailer) throw new InvalidDataException($"more than {MaxTrailer} bytes follow the end of the archive");
        if (_tool is null) return;
        _tool.WaitForExit();
        if (_tool.ExitCode != 0)
            throw new InvalidDataException($"{_tool.StartInfo.FileName} failed: {_tool.StandardError.ReadToEnd().Trim()}");
    }

    public void Dispose()
    {
        Stream.Dispose();
        if (_tool is null) return;
        if (!_tool.HasExited) _tool.Kill();
        _tool.WaitForExit();
        _tool.Dispose();
    }
}
