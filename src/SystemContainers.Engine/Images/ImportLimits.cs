namespace SystemContainers.Engine.Images;

/// <summary>
/// What one image import may unpack: the bytes of member data (read or skipped) and the number of
/// tar headers. The defaults hold any distribution rootfs (a debootstrap image is about 300 MB in
/// 9000 entries) and stop a decompression bomb long before it fills the disk.
/// </summary>
public sealed record ImportLimits(long MaxBytes, long MaxEntries)
{
    public const long DefaultMaxBytes = 32L << 30, DefaultMaxEntries = 2_000_000;

    public static ImportLimits Default { get; } = new(DefaultMaxBytes, DefaultMaxEntries);
}
