using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Runtime;

/// <summary>An executable copied into a memfd and sealed against any change (the way runc runs itself).</summary>
internal static class SealedCopy
{
    private const uint MFD_CLOEXEC = 1, MFD_ALLOW_SEALING = 2, MFD_EXEC = 0x10;
    private const int F_ADD_SEALS = 1033, F_SEAL_SEAL = 1, F_SEAL_SHRINK = 2, F_SEAL_GROW = 4, F_SEAL_WRITE = 8;

    public static SafeFd Of(string path)
    {
        byte[] image = File.ReadAllBytes(path);
        var fd = Create(System.IO.Path.GetFileName(path));
        try
        {
            Sys.WriteAll(fd, image);
            if (Libc.fcntl(fd.Fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) throw NativeException.FromLastError("seal the memfd copy of", path);
            return fd;
        }
        catch
        {
            fd.Dispose();
            throw;
        }
    }

    private static SafeFd Create(string name)
    {
        long number = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 319,
            Architecture.Arm64 or Architecture.RiscV64 or Architecture.LoongArch64 => 279,
            var other => throw new PlatformNotSupportedException($"no memfd_create syscall number for {other}"),
        };
        nint utf8 = Marshal.StringToCoTaskMemUTF8(name);
        try
        {
            // MFD_EXEC keeps it executable where vm.memfd_noexec makes memfds noexec by default; kernels before 6.3 refuse the flag.
            long fd = Libc.syscall(number, utf8, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC, 0, 0);
            if (fd < 0 && Marshal.GetLastPInvokeError() == Libc.EINVAL)
                fd = Libc.syscall(number, utf8, MFD_CLOEXEC | MFD_ALLOW_SEALING, 0, 0);
            if (fd < 0) throw NativeException.FromLastError("memfd_create", name);
            return new SafeFd((int)fd);
        }
        finally
        {
            Marshal.FreeCoTaskMem(utf8);
        }
    }
}
