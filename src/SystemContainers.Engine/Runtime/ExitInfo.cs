using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// How a process that is not this daemon's child ended: an init adopted after a daemon restart
/// is reaped by its real parent, so waitid cannot tell. While it is a zombie, /proc/pid/stat
/// still carries its wait status; once reaped, the kernel (6.15 and later) keeps it for a held
/// pidfd (PIDFD_GET_INFO with PIDFD_INFO_EXIT).
/// </summary>
public static unsafe class ExitInfo
{
    // _IOWR(0xFF, 11, struct pidfd_info), 64 bytes: mask at 0, exit_code at 60.
    private const ulong PIDFD_GET_INFO = 0xC040FF0B;
    private const ulong PIDFD_INFO_EXIT = 1UL << 3;

    /// <summary>The exit status of an exited process (startTime guards the pid); null when the kernel no longer says.</summary>
    public static ExitStatus? Of(SafeFd pidfd, int pid, ulong? startTime)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(2);
        bool pidfdInfo = true;
        byte* info = stackalloc byte[64];
        do
        {
            if (pidfdInfo)
            {
                new Span<byte>(info, 64).Clear();
                *(ulong*)info = PIDFD_INFO_EXIT;
                if (Libc.ioctl(pidfd.Fd, PIDFD_GET_INFO, info) == 0)
                {
                    if ((*(ulong*)info & PIDFD_INFO_EXIT) != 0) return Decode(*(int*)(info + 60));
                }
                else if (Marshal.GetLastPInvokeError() is not Libc.ESRCH)
                {
                    // An older kernel: no pidfd info at all.
                    pidfdInfo = false;
                }
            }
            if (startTime is not null && ProcStat.StartTime(pid) == startTime && ProcStat.ZombieWaitStatus(pid) is int status) return Decode(status);
            Thread.Sleep(5);
        }
        while (DateTime.UtcNow < deadline);
        return null;
    }

    private static ExitStatus Decode(int status) =>
        (status & 0x7f) == 0 ? new ExitStatus((status >> 8) & 0xff, null) : new ExitStatus(null, status & 0x7f);
}
