using System.Text;

namespace SystemContainers.Engine.Images;

/// <summary>One member of a tar stream: its full name, type flag and link target.</summary>
public sealed record TarMember(string Name, char Type, string LinkName)
{
    public bool IsSymlink => Type == '2';
    public bool IsHardlink => Type == '1';
    public bool IsDirectory => Type == '5';
}

/// <summary>
/// Reads tar member headers (ustar, GNU long names, PAX) without extracting anything. PAX
/// records are split by their length prefix, so binary xattr values (file capabilities, ACLs)
/// that GNU tar writes are skipped rather than parsed. Every header checksum is verified.
/// </summary>
public static class TarScanner
{
    private const int Block = 512;

    public static IEnumerable<TarMember> Scan(Stream stream)
    {
        var header = new byte[Block];
        string? longName = null, longLink = null, paxPath = null, paxLink = null;
        while (true)
        {
            int read = stream.ReadAtLeast(header, Block, throwOnEndOfStream: false);
            // Like GNU tar, a clean end without the zero blocks is accepted; a partial header is not.
            if (read == 0) yield break;
            if (read < Block) throw new InvalidDataException("archive ends inside a header");
            if (header.All(b => b == 0)) yield break;
            VerifyChecksum(header);
            char type = (char)header[156];
            long size = ParseNumber(header.AsSpan(124, 12), "size");
            switch (type)
            {
                case 'L':
                    longName = ReadString(stream, size);
                    continue;
                case 'K':
                    longLink = ReadString(stream, size);
                    continue;
                case 'x':
                    (paxPath, paxLink) = ReadPax(stream, size);
                    continue;
                case 'g':
                    Skip(stream, size);
                    continue;
            }
            string name = paxPath ?? longName ?? HeaderName(header);
            string link = paxLink ?? longLink ?? CString(header.AsSpan(157, 100));
            longName = longLink = paxPath = paxLink = null;
            // Links and directories carry no data whatever their size field says.
            if (type is not ('1' or '2' or '3' or '4' or '5' or '6')) Skip(stream, size);
            yield return new TarMember(name, type == '\0' ? '0' : type, link);
        }
    }

    private static string HeaderName(byte[] h)
    {
        string name = CString(h.AsSpan(0, 100));
        // Only POSIX ustar ("ustar\0" "00") has a prefix field; GNU tar uses those bytes for times.
        bool ustar = h.AsSpan(257, 6).SequenceEqual("ustar\0"u8) && h[263] == '0' && h[264] == '0';
        string prefix = ustar ? CString(h.AsSpan(345, 155)) : "";
        return prefix.Length > 0 ? prefix + "/" + name : name;
    }

    private static void VerifyChecksum(byte[] h)
    {
        long stored = ParseNumber(h.AsSpan(148, 8), "checksum");
        long sum = 0;
        for (int i = 0; i < Block; i++) sum += i is >= 148 and < 156 ? ' ' : h[i];
        if (sum != stored) throw new InvalidDataException($"header checksum mismatch (stored {stored}, computed {sum})");
    }

    private static long ParseNumber(ReadOnlySpan<byte> field, string what)
    {
        if ((field[0] & 0x80) != 0)
        {
            // GNU base-256 for values that do not fit in octal.
            long v = field[0] & 0x7f;
            for (int i = 1; i < field.Length; i++) v = (v << 8) | field[i];
            return v;
        }
        long n = 0;
        bool any = false;
        foreach (byte b in field)
        {
            if (b is 0 or (byte)' ')
            {
                if (any) break;
                continue;
            }
            if (b is < (byte)'0' or > (byte)'7') throw new InvalidDataException($"header {what} field is not a number");
            n = n * 8 + (b - '0');
            any = true;
        }
        return n;
    }

    private static (string? Path, string? Link) ReadPax(Stream stream, long size)
    {
        byte[] data = ReadData(stream, size);
        string? path = null, link = null;
        int pos = 0;
        while (pos < data.Length)
        {
            int space = Array.IndexOf(data, (byte)' ', pos);
            if (space < 0 || !int.TryParse(Encoding.ASCII.GetString(data, pos, space - pos), out int len) || len <= 0 || pos + len > data.Length)
                throw new InvalidDataException("malformed PAX extended header");
            int eq = Array.IndexOf(data, (byte)'=', space + 1, pos + len - space - 1);
            if (eq < 0) throw new InvalidDataException("malformed PAX record");
            string key = Encoding.UTF8.GetString(data, space + 1, eq - space - 1);
            if (key is "path" or "linkpath")
            {
                string value = Encoding.UTF8.GetString(data, eq + 1, pos + len - eq - 2);
                if (key == "path") path = value; else link = value;
            }
            pos += len;
        }
        return (path, link);
    }

    private static string ReadString(Stream stream, long size) => CString(ReadData(stream, size));

    private static byte[] ReadData(Stream stream, long size)
    {
        if (size > 1 << 20) throw new InvalidDataException($"extended header of {size} bytes is too large");
        var data = new byte[size];
        stream.ReadExactly(data);
        SkipPadding(stream, size);
        return data;
    }

    private static void Skip(Stream stream, long size)
    {
        var buf = new byte[64 * 1024];
        long left = size;
        while (left > 0)
        {
            int n = stream.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n <= 0) throw new InvalidDataException("archive ends inside a member's data");
            left -= n;
        }
        SkipPadding(stream, size);
    }

    private static void SkipPadding(Stream stream, long size)
    {
        int pad = (int)((Block - size % Block) % Block);
        if (pad > 0) stream.ReadExactly(new byte[pad]);
    }

    private static string CString(ReadOnlySpan<byte> s)
    {
        int nul = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? s : s[..nul]);
    }
}
