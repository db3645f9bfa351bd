using System.Runtime.InteropServices;

namespace SystemContainers.Engine.Interop;

/// <summary>A failed system call: the operation, the path it touched and the errno, as crun words them.</summary>
public sealed class NativeException : Exception
{
    public NativeException(int errno, string operation, string? path = null)
        : base($"cannot {operation}{(path is null ? "" : " " + path)}: {ErrnoName(errno)}")
    {
        Errno = errno;
        Operation = operation;
        Path = path;
    }

    public int Errno { get; }
    public string Operation { get; }
    public string? Path { get; }

    /// <summary>Throws for the errno of the call that just failed.</summary>
    public static NativeException FromLastError(string operation, string? path = null) =>
        new(Marshal.GetLastPInvokeError(), operation, path);

    public static string ErrnoName(int errno) =>
        Marshal.PtrToStringAnsi(Libc.strerrorname_np(errno)) ?? $"errno {errno}";
}
