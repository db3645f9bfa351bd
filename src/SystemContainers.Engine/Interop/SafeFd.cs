using System.Runtime.InteropServices;

namespace SystemContainers.Engine.Interop;

/// <summary>An owned file descriptor; the only way the engine holds one.</summary>
public sealed class SafeFd : SafeHandle
{
    public SafeFd(int fd, bool ownsHandle = true) : base(-1, ownsHandle) => SetHandle(fd);

    public override bool IsInvalid => handle == -1;

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
