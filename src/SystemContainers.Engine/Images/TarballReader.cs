using System.Globalization;
using System.Text;

namespace SystemContainers.Engine.Images;

/// <summary>
/// One member of a tar stream with everything PAX, GNU and ustar headers say about it: the full
/// name, type flag, link target, mode, owners, mtime, data size and extended attributes.
/// </summary>
public sealed record TarMember(string Name, char Type, string LinkName, int Mode, long Uid, long Gid,
    long MtimeSeconds, long MtimeNanoseconds, long Size, IReadOnlyList<(string Name, byte[] Value)> Xattrs, bool Sparse)
{
    public bool IsRegular => Type is '0' or '7';
    public bool IsHardlink => Type == '1';
    public bool IsSymlink => Type == '2';
    public bool IsDirectory => Type == '5';
}

/// <summary>
/// Reads tar members (ustar with prefixes, GNU long names and links, PAX local and global headers)
/// from a stream and hands out each member's data; the only tar parser of the engine, so what is
/// checked is what is extracted. PAX records are split by their length prefix, so binary xattr
/// values (file capabilities, ACLs) pass intact. Every header checksum is verified, and every
/// byte of member data, read or skipped, counts against the limits.
/// </summary>
public sealed class TarballReader(Stream stream, ImportLimits limits)
{
    private const int Block = 512;
    private const int MaxExtendedHeader = 1 << 20;
    private readonly byte[] _header = new byte[Block];
    private readonly Dictionary<string, byte[]> _global = new(StringComparer.Ordinal);
    private long _left, _padding, _dataBytes, _headers;

    /// <summary>The next member, after skipping what the caller did not read of the last one; null at the end.</summary>
    public TarMember? Next()
    {
        SkipRest();
        string? longName = null, longLink = null;
        Dictionary<string, byte[]>? pax = null;
        while (true)
        {
            if (++_headers > limits.MaxEntries)
                throw new InvalidDataException($"the archive has more than {limits.MaxEntries} entries (the import limit)");
            int read = stream.ReadAtLeast(_header, Block, throwOnEndOfStream: false);
            // Like GNU tar, a clean end without the zero blocks is accepted; a partial header is not.
            if (read == 0) return null;
            if (read < Block) throw new InvalidDataException("archive ends inside a header");
            if (_header.AsSpan().IndexOfAnyExcept((byte)0) < 0) return null;
            VerifyChecksum(_header);
            char type = (char)_header[156];
            long size = ParseNumber(_header.AsSpan(124, 12), "size");
            switch (type)
            {
                case 'L':
                    longName = CString(ReadExtended(size));
                    continue;
                case 'K':
                    longLink = CString(ReadExtended(size));
                    continue;
                case 'x':
                    pax = ParsePax(ReadExtended(size), pax ?? new(StringComparer.Ordinal));
                    continue;
                case 'g':
                    ParsePax(ReadExtended(size), _global);
                    continue;
            }
            string? Record(string key) =>
                pax is not null && pax.TryGetValue(key, out var v) ? Encoding.UTF8.GetString(v)
                : _global.TryGetValue(key, out var g) ? Encoding.UTF8.GetString(g) : null;
            bool sparse = type == 'S' || _global.Keys.Concat(pax?.Keys ?? Enumerable.Empty<string>()).Any(k => k.StartsWith("GNU.sparse.", StringComparison.Ordinal));
            string name = Record("GNU.sparse.name") ?? Record("path") ?? longName ?? HeaderName(_header);
            string link = Record("linkpath") ?? longLink ?? CString(_header.AsSpan(157, 100));
            size = Record("size") is string s ? PaxNumber(s, "size") : size;
            long uid = Record("uid") is string u ? PaxNumber(u, "uid") : ParseNumber(_header.AsSpan(108, 8), "uid");
            long gid = Record("gid") is string g ? PaxNumber(g, "gid") : ParseNumber(_header.AsSpan(116, 8), "gid");
            var (sec, nsec) = Record("mtime") is string m ? PaxTime(m) : (ParseNumber(_header.AsSpan(136, 12), "mtime"), 0L);
            int mode = (int)(ParseNumber(_header.AsSpan(100, 8), "mode") & 0xfff);
            var xattrs = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            foreach (var source in new[] { _global, pax ?? [] })
                foreach (var (key, value) in source)
                    if (key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal)) xattrs[key["SCHILY.xattr.".Length..]] = value;
            if (type == '\0') type = '0';
            // An old GNU sparse member lists the rest of its map in extension blocks before its data.
            if (type == 'S' && _header[482] != 0) SkipSparseExtensions();
            // Links and directories carry no data whatever their size field says.
            long data = type is '1' or '2' or '3' or '4' or '5' or '6' ? 0 : size;
            if (data > limits.MaxBytes - _dataBytes)
                throw new InvalidDataException($"member '{name}' of {size} bytes takes the archive beyond {limits.MaxBytes} unpacked bytes (the import limit)");
            _dataBytes += data;
            _left = data;
            _padding = (Block - data % Block) % Block;
            return new TarMember(name, type, link, mode, uid, gid, sec, nsec, data, [.. xattrs.Select(x => (x.Key, x.Value))], sparse);
        }
    }

    /// <summary>Reads the current member's data; 0 at its end.</summary>
    public int Read(Span<byte> buffer)
    {
        if (_left == 0) return 0;
        int n = stream.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
        if (n <= 0) throw new InvalidDataException("archive ends inside a member's data");
        _left -= n;
        return n;
    }

    private void SkipRest()
    {
        var buf = new byte[64 * 1024];
        while (Read(buf) > 0) { }
        if (_padding > 0) stream.ReadExactly(buf.AsSpan(0, (int)_padding));
        _padding = 0;
    }

    private void SkipSparseExtensions()
    {
        var block = new byte[Block];
        do
        {
            if (++_headers > limits.MaxEntries)
                throw new InvalidDataException($"the archive has more than {limits.MaxEntries} entries (the import limit)");
            stream.ReadExactly(block);
        } while (block[504] != 0);
    }

    private byte[] ReadExtended(long size)
    {
        if (size > MaxExtendedHeader) throw new InvalidDataException($"extended header of {size} bytes is too large");
        var data = new byte[size];
        stream.ReadExactly(data);
        int pad = (int)((Block - size % Block) % Block);
        if (pad > 0) stream.ReadExactly(new byte[pad]);
        return data;
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
            // GNU base-256 for values that do not fit in octal; negative ones (bit 6 set) are refused.
            if ((field[0] & 0x40) != 0) throw new InvalidDataException($"header {what} field is negative");
            long v = field[0] & 0x3f;
            foreach (byte b in field[1..])
            {
                if (v > long.MaxValue >> 8) throw new InvalidDataException($"header {what} field is out of range");
                v = (v << 8) | b;
            }
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

    private static long PaxNumber(string value, string key) =>
        long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long n)
            ? n : throw new InvalidDataException($"PAX record {key}='{value}' is not a number");

    /// <summary>A PAX time: seconds with an optional fraction of up to nine digits.</summary>
    private static (long, long) PaxTime(string value)
    {
        int dot = value.IndexOf('.');
        long sec = PaxNumber(dot < 0 ? value : value[..dot], "mtime");
        if (dot < 0) return (sec, 0);
        string frac = value[(dot + 1)..];
        if (frac.Length is 0 or > 9 || !frac.All(char.IsAsciiDigit)) throw new InvalidDataException($"PAX record mtime='{value}' is not a time");
        return (sec, long.Parse(frac.PadRight(9, '0'), CultureInfo.InvariantCulture));
    }

    /// <summary>Adds the records of a PAX header to into; a record with an empty value deletes the key, as POSIX says.</summary>
    private static Dictionary<string, byte[]> ParsePax(byte[] data, Dictionary<string, byte[]> into)
    {
        int pos = 0;
        while (pos < data.Length)
        {
            int space = Array.IndexOf(data, (byte)' ', pos);
            if (space < 0 || !int.TryParse(data.AsSpan(pos, space - pos), NumberStyles.None, CultureInfo.InvariantCulture, out int len)
                || len <= space - pos + 1 || pos + len > data.Length || data[pos + len - 1] != '\n')
                throw new InvalidDataException("malformed PAX extended header");
            int eq = Array.IndexOf(data, (byte)'=', space + 1, pos + len - space - 1);
            if (eq < 0) throw new InvalidDataException("malformed PAX record");
            string key = Encoding.UTF8.GetString(data, space + 1, eq - space - 1);
            byte[] value = data[(eq + 1)..(pos + len - 1)];
            if (value.Length == 0) into.Remove(key); else into[key] = value;
            pos += len;
        }
        return into;
    }

    private static string CString(ReadOnlySpan<byte> s)
    {
        int nul = s.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? s : s[..nul]);
    }
}
