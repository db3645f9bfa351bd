using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A read-only overlay of layers (top first) at a directory of the caller's: a layered root
/// (overlay's upper over its image) seen whole, whiteouts and opaque directories applied, for
/// reading it as one tree. Read-only, so nothing done through it changes a layer; disposing
/// detaches it.
/// </summary>
internal sealed class LayerMount : IDisposable
{
    private readonly string _at;

    private LayerMount(string at) => _at = at;

    public static LayerMount ReadOnly(IReadOnlyList<string> layers, string at)
    {
        Directory.CreateDirectory(at);
        if (Libc.mount("overlay", at, "overlay", Libc.MS_RDONLY, $"lowerdir={string.Join(':', layers)}") < 0)
            throw NativeException.FromLastError($"mount a read-only overlay of {string.Join(", ", layers)} on", at);
        return new LayerMount(at);
    }

    public void Dispose()
    {
        if (Libc.umount2(_at, Libc.MNT_DETACH) < 0) throw NativeException.FromLastError("unmount", _at);
    }
}
