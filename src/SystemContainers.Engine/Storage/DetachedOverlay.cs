using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// A read-only overlay mount made with the new mount API (fsopen, fsconfig, fsmount) and never
/// attached anywhere: it is reached through its fd (/proc/self/fd/N) and gone when the fd closes.
/// </summary>
internal static class DetachedOverlay
{
    private const long SYS_fsopen = 430, SYS_fsconfig = 431, SYS_fsmount = 432;
    private const long FSOPEN_CLOEXEC = 1, FSMOUNT_CLOEXEC = 1, MOUNT_ATTR_RDONLY = 1;
    private const long FSCONFIG_SET_STRING = 1, FSCONFIG_CMD_CREATE = 6;

    /// <summary>Layers lowerdirs (top first, ':' between) read-only; what names the container in errors.</summary>
    public static SafeFd Mount(string lowerdirs, string what)
    {
        nint type = Marshal.StringToCoTaskMemUTF8("overlay"), key = Marshal.StringToCoTaskMemUTF8("lowerdir"), value = Marshal.StringToCoTaskMemUTF8(lowerdirs);
        try
        {
            int fs = (int)Libc.syscall(SYS_fsopen, type, FSOPEN_CLOEXEC, 0, 0);
            if (fs < 0) throw NativeException.FromLastError("fsopen overlay for", what);
            using var context = new SafeFd(fs, name: "overlay context");
            if (Libc.syscall5(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0) < 0)
                throw NativeException.FromLastError($"set overlay lowerdir={lowerdirs} for", what);
            if (Libc.syscall5(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, 0, 0, 0) < 0)
                throw NativeException.FromLastError($"create overlay lowerdir={lowerdirs} for", what);
            int mount = (int)Libc.syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY, 0);
            if (mount < 0) throw NativeException.FromLastError($"fsmount overlay lowerdir={lowerdirs} for", what);
            return new SafeFd(mount, name: $"overlay of {what}");
        }
        finally
        {
            Marshal.FreeCoTaskMem(type);
            Marshal.FreeCoTaskMem(key);
            Marshal.FreeCoTaskMem(value);
        }
    }
}
