using System.Globalization;
using System.Text;

namespace SystemContainers.Engine.Images;

/// <summary>
/// Writes PAX tar members, the counterpart of TarballReader: long names and links, large ids and
/// sizes, nanosecond mtimes and xattrs go in a PAX record, whose values are raw bytes, so binary
/// xattrs (file capabilities, ACLs) pass intact. Each member's data is read from the stream it is
/// given, exactly its size, so nothing is held whole.
/// </summary>
public sealed class TarballWriter(Stream output)
{
    private const int Block = 512;
    private const long MaxOctal8 = 0x1FFFFF, MaxOctal12 = 0x1FFFFFFFF;
    private readonly byte[] _buffer = new byte[256 * 1024];

    /// <summary>A member as TarballReader read it, under a new name; the data comes from read (the reader's current member).</summary>
    public void Add(TarMember m, string name, Func<Span<byte>, int> read)
    {
        WriteHeader(name, m.Type, m.LinkName, m.Mode, m.Uid, m.Gid, m.MtimeSeconds, m.MtimeNanoseconds, m.Size, m.Xattrs);
        long left = m.Size;
        while (left > 0)
        {
            int n = read(_buffer.AsSpan(0, (int)Math.Min(_buffer.Length, left)));
            if (n <= 0) throw new InvalidDataException($"member '{name}' ended {left} bytes early");
            output.Write(_buffer, 0, n);
            left -= n;
        }
        Pad(m.Size);
    }

    /// <summary>A regular file of size bytes from data, owned by root.</summary>
    public void AddFile(string name, int mode, long size, Stream data, DateTimeOffset mtime)
    {
        WriteHeader(name, '0', "", mode, 0, 0, mtime.ToUnixTimeSeconds(), 0, size, []);
        long left = size;
        while (left > 0)
        {
            int n = data.Read(_buffer, 0, (int)Math.Min(_buffer.Length, left));
            if (n <= 0) throw new InvalidDataException($"file '{name}' ended {left} bytes early");
            output.Write(_buffer, 0, n);
            left -= n;
        }
        Pad(size);
    }

    /// <summary>A regular file whose data is in memory, owned by root: written as it is, not copied through the buffer.</summary>
    public void AddFile(string name, int mode, ReadOnlyMemory<byte> data, DateTimeOffset mtime)
    {
        WriteHeader(name, '0', "", mode, 0, 0, mtime.ToUnixTimeSeconds(), 0, data.Length, []);
        output.Write(data.Span);
        Pad(data.Length);
    }

    /// <summary>The two zero blocks that end an archive.</summary>
    public void Finish()
    {
        output.Write(new byte[2 * Block]);
        output.Flush();
    }

    private void WriteHeader(string name, char type, string link, int mode, long uid, long gid, long sec, long nsec, long size,
        IReadOnlyList<(string Name, byte[] Value)> xattrs)
    {
        var pax = new List<(string, byte[])>();
        byte[] nameBytes = Encoding.UTF8.GetBytes(name), linkBytes = Encoding.UTF8.GetBytes(link);
        if (nameBytes.Length > 100 || !IsAscii(nameBytes)) pax.Add(("path", nameBytes));
        if (linkBytes.Length > 100 || !IsAscii(linkBytes)) pax.Add(("linkpath", linkBytes));
        if (uid > MaxOctal8) pax.Add(("uid", Ascii(uid)));
        if (gid > MaxOctal8) pax.Add(("gid", Ascii(gid)));
        if (size > MaxOctal12) pax.Add(("size", Ascii(size)));
        if (nsec != 0 || sec is < 0 or > MaxOctal12)
            pax.Add(("mtime", Encoding.ASCII.GetBytes(nsec == 0 ? $"{sec}" : $"{sec}.{nsec:D9}")));
        foreach (var (key, value) in xattrs) pax.Add(("SCHILY.xattr." + key, value));
        if (pax.Count > 0)
        {
            var records = new MemoryStream();
            foreach (var (key, value) in pax) WriteRecord(records, key, value);
            byte[] data = records.ToArray();
            output.Write(Header("././@PaxHeader", 'x', "", 0x1a4, 0, 0, 0, data.Length));
            output.Write(data);
            Pad(data.Length);
        }
        output.Write(Header(name, type, link, mode, Math.Min(uid, MaxOctal8), Math.Min(gid, MaxOctal8), Math.Clamp(sec, 0, MaxOctal12), Math.Min(size, MaxOctal12)));
    }

    /// <summary>A PAX record is "LEN key=value\n" where LEN counts itself: its digits are found by trying.</summary>
    private static void WriteRecord(Stream to, string key, byte[] value)
    {
        int body = 1 + Encoding.UTF8.GetByteCount(key) + 1 + value.Length + 1;
        int len = body + 1;
        while (len.ToString(CultureInfo.InvariantCulture).Length + body != len) len = len.ToString(CultureInfo.InvariantCulture).Length + body;
        to.Write(Encoding.ASCII.GetBytes(len.ToString(CultureInfo.InvariantCulture)));
        to.Write(Encoding.UTF8.GetBytes($" {key}="));
        to.Write(value);
        to.WriteByte((byte)'\n');
    }

    private static byte[] Header(string name, char type, string link, int mode, long uid, long gid, long mtime, long size)
    {
        var h = new byte[Block];
        Field(h, 0, 100, Encoding.UTF8.GetBytes(name));
        Octal(h, 100, 8, mode & 0xfff);
        Octal(h, 108, 8, uid);
        Octal(h, 116, 8, gid);
        Octal(h, 124, 12, size);
        Octal(h, 136, 12, mtime);
        h[156] = (byte)type;
        Field(h, 157, 100, Encoding.UTF8.GetBytes(link));
        "ustar\0"u8.CopyTo(h.AsSpan(257));
        "00"u8.CopyTo(h.AsSpan(263));
        h.AsSpan(148, 8).Fill((byte)' ');
        long sum = 0;
        foreach (byte b in h) sum += b;
        Octal(h, 148, 7, sum);
        return h;
    }

    private void Pad(long size)
    {
        int pad = (int)((Block - size % Block) % Block);
        if (pad > 0) output.Write(new byte[pad]);
    }

    /// <summary>A field too short for the value keeps its head; the PAX record has the whole.</summary>
    private static void Field(byte[] h, int at, int length, byte[] value) => value.AsSpan(0, Math.Min(length, value.Length)).CopyTo(h.AsSpan(at));

    private static void Octal(byte[] h, int at, int length, long value)
    {
        string digits = Convert.ToString(value, 8).PadLeft(length - 1, '0');
        Encoding.ASCII.GetBytes(digits).CopyTo(h.AsSpan(at));
        h[at + length - 1] = 0;
    }

    private static bool IsAscii(byte[] s) => s.All(b => b is > 0 and < 0x80);

    private static byte[] Ascii(long n) => Encoding.ASCII.GetBytes(n.ToString(CultureInfo.InvariantCulture));
}
