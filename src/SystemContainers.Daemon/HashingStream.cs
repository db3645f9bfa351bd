using System.Security.Cryptography;

namespace SystemContainers.Daemon;

/// <summary>
/// Passes bytes through to or from inner, taking their SHA-256 and count as they pass: what a
/// container's stream between daemons is checked by. Reading, ended is called at the first end of
/// the stream (before a read returns 0), so a check there fails the reader rather than its caller.
/// </summary>
public sealed class HashingStream(Stream inner, Action<long>? passed = null, Action<string>? ended = null) : Stream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private bool _ended;

    public long Bytes { get; private set; }

    /// <summary>The SHA-256 of what has passed, lower-case hex.</summary>
    public string Sha256 => Convert.ToHexStringLower(_hash.GetCurrentHash());

    public override int Read(Span<byte> buffer) => Passed(inner.Read(buffer), buffer);
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) =>
        Passed(await inner.ReadAsync(buffer, ct), buffer.Span);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        Passed(buffer.Length, buffer);
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        await inner.WriteAsync(buffer, ct);
        Passed(buffer.Length, buffer.Span);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
        WriteAsync(buffer.AsMemory(offset, count), ct).AsTask();

    private int Passed(int n, ReadOnlySpan<byte> buffer)
    {
        if (n == 0 && buffer.Length > 0 && !_ended)
        {
            _ended = true;
            ended?.Invoke(Sha256);
        }
        if (n <= 0) return n;
        _hash.AppendData(buffer[..n]);
        Bytes += n;
        passed?.Invoke(Bytes);
        return n;
    }

    public override bool CanRead => inner.CanRead;
    public override bool CanSeek => false;
    public override bool CanWrite => inner.CanWrite;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _hash.Dispose();
        base.Dispose(disposing);
    }
}
