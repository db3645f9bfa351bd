namespace SystemContainers.Engine.Files;

/// <summary>
/// A file's data at the size it had when its archive header was written: a file the container
/// grows meanwhile is cut there and one it shrinks (or that fails to read) is padded with zeros,
/// so the archive's framing never depends on what the container does. Problem says which happened.
/// </summary>
internal sealed class FixedLengthStream(Stream inner, long length, string path) : Stream
{
    private long _position;

    public string? Problem { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int want = (int)Math.Min(buffer.Length, length - _position);
        if (want <= 0) return 0;
        int n = 0;
        if (Problem is null)
        {
            try { n = inner.Read(buffer[..want]); }
            catch (IOException e) { Problem = $"{path}: {e.Message}; the rest was sent as zeros"; }
            if (n == 0) Problem ??= $"{path}: shrank while it was copied; the rest was sent as zeros";
        }
        if (n == 0)
        {
            buffer[..want].Clear();
            n = want;
        }
        _position += n;
        return n;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default) => ValueTask.FromResult(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) => Task.FromResult(Read(buffer.AsSpan(offset, count)));

    public override long Seek(long offset, SeekOrigin origin) =>
        origin == SeekOrigin.Current && offset == 0 ? _position : throw new NotSupportedException();

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
