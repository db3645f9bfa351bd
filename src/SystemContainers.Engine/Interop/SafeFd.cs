using System.Runtime.InteropServices;

namespace SystemContainers.Engine.Interop;

/// <summary>An owned file descriptor; the only way the engine holds one.</summary>
public sealed class SafeFd : SafeHandle
{
    public SafeFd(int fd, bool ownsHandle = true, string? name = null) : base(-1, ownsHandle)
    {
        SetHandle(fd);
        _name = name;
    }

    private readonly string? _name;

    /// <summary>What the fd refers to, for error messages: the path it was opened at, else "fd N".</summary>
    public string Name => _name ?? $"fd {Fd}";

    public override bool IsInvalid => handle == -1;

    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Libc.close((int)handle) == 0;
}
