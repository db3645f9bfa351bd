using System.Buffers.Binary;
using System.Runtime.InteropServices;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Cgroups;

/// <summary>
/// The device policy on cgroup2, where there is no devices controller: an eBPF program of type
/// BPF_PROG_TYPE_CGROUP_DEVICE that the kernel runs on every open and mknod of a device node by
/// a process in the cgroup or below it, returning 1 to allow and 0 to refuse (EPERM).
/// Loading (the kernel's verifier) costs about 2 ms, attaching a fraction of that: the standard
/// policy's program is loaded once per daemon and attached to every container's cgroup.
/// </summary>
public sealed unsafe class DeviceBpfProgram : IDisposable
{
    private const int BPF_PROG_LOAD = 5, BPF_PROG_ATTACH = 8;
    private const int BPF_PROG_TYPE_CGROUP_DEVICE = 15, BPF_CGROUP_DEVICE = 6, BPF_F_ALLOW_MULTI = 2;
    private const int DevTypeBlock = 1, DevTypeChar = 2, AccessMknod = 1, AccessRead = 2, AccessWrite = 4;

    private static readonly Lazy<DeviceBpfProgram> StandardProgram = new(() => Load(DevicePolicy.Allowed));
    private readonly SafeFd _fd;

    private DeviceBpfProgram(SafeFd fd) => _fd = fd;

    /// <summary>DevicePolicy.Allowed, loaded on first use; it lives as long as the process.</summary>
    public static DeviceBpfProgram Standard => StandardProgram.Value;

    public static DeviceBpfProgram Load(IReadOnlyList<DeviceRule> rules) => new(LoadInstructions(Compile(rules)));

    public void Dispose() => _fd.Dispose();

    /// <summary>Attaches the program to a cgroup2 directory (programs attached below it still run too).</summary>
    public void AttachTo(string cgroupDir)
    {
        using var cgroup = Sys.Open(cgroupDir, Libc.O_RDONLY | Libc.O_DIRECTORY);
        Span<byte> attr = stackalloc byte[128];
        attr.Clear();
        BinaryPrimitives.WriteInt32LittleEndian(attr, cgroup.Fd);
        BinaryPrimitives.WriteInt32LittleEndian(attr[4..], _fd.Fd);
        BinaryPrimitives.WriteInt32LittleEndian(attr[8..], BPF_CGROUP_DEVICE);
        BinaryPrimitives.WriteInt32LittleEndian(attr[12..], BPF_F_ALLOW_MULTI);
        if (Bpf(BPF_PROG_ATTACH, attr) < 0) throw NativeException.FromLastError("attach the device filter to", cgroupDir);
    }

    private static SafeFd LoadInstructions(byte[] instructions)
    {
        byte[] license = "GPL\0"u8.ToArray();
        byte[] log = new byte[16384];
        fixed (byte* insns = instructions, lic = license, logBuf = log)
        {
            Span<byte> attr = stackalloc byte[128];
            attr.Clear();
            BinaryPrimitives.WriteInt32LittleEndian(attr, BPF_PROG_TYPE_CGROUP_DEVICE);
            BinaryPrimitives.WriteInt32LittleEndian(attr[4..], instructions.Length / 8);
            BinaryPrimitives.WriteInt64LittleEndian(attr[8..], (long)insns);
            BinaryPrimitives.WriteInt64LittleEndian(attr[16..], (long)lic);
            BinaryPrimitives.WriteInt32LittleEndian(attr[24..], 1);
            BinaryPrimitives.WriteInt32LittleEndian(attr[28..], log.Length);
            BinaryPrimitives.WriteInt64LittleEndian(attr[32..], (long)logBuf);
            "sc_devices"u8.CopyTo(attr[48..]);
            BinaryPrimitives.WriteInt32LittleEndian(attr[68..], BPF_CGROUP_DEVICE);
            long fd = Bpf(BPF_PROG_LOAD, attr);
            if (fd < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                string verifier = System.Text.Encoding.UTF8.GetString(log).TrimEnd('\0').Trim();
                throw new NativeException(errno, "load the device filter", verifier.Length > 0 ? $"({verifier})" : null);
            }
            return new SafeFd((int)fd);
        }
    }

    private static long Bpf(int command, Span<byte> attr)
    {
        fixed (byte* a = attr)
            return Libc.syscall(BpfSyscall, command, (long)a, attr.Length, 0);
    }

    private static long BpfSyscall => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 321,
        Architecture.Arm64 or Architecture.RiscV64 or Architecture.LoongArch64 => 280,
        var other => throw new PlatformNotSupportedException($"no bpf syscall number for {other}"),
    };

    /// <summary>
    /// r2 = device type, r3 = access, r4 = major, r5 = minor (from struct bpf_cgroup_dev_ctx);
    /// then one block per rule that returns 1 when everything matches, and 0 after the last.
    /// </summary>
    private static byte[] Compile(IReadOnlyList<DeviceRule> rules)
    {
        var p = new List<ulong>
        {
            Insn(0x61, 2, 1, 0, 0), // r2 = ctx->access_type
            Insn(0x57, 2, 0, 0, 0xFFFF), // r2 &= 0xffff
            Insn(0x61, 3, 1, 0, 0), // r3 = ctx->access_type
            Insn(0x77, 3, 0, 0, 16), // r3 >>= 16
            Insn(0x61, 4, 1, 4, 0), // r4 = ctx->major
            Insn(0x61, 5, 1, 8, 0), // r5 = ctx->minor
        };
        foreach (var rule in rules)
        {
            int access = (rule.Access.Contains('m') ? AccessMknod : 0) | (rule.Access.Contains('r') ? AccessRead : 0) |
                         (rule.Access.Contains('w') ? AccessWrite : 0);
            var tests = new List<(int Code, int Dst, int Src, int Imm)>
            {
                (0x55, 2, 0, rule.Type == 'b' ? DevTypeBlock : DevTypeChar), // if r2 != type goto next
                (0xbf, 1, 3, 0), // r1 = r3
                (0x57, 1, 0, ~access), // r1 &= ~allowed
                (0x55, 1, 0, 0), // if r1 != 0 goto next
                (0x55, 4, 0, rule.Major), // if r4 != major goto next
            };
            if (rule.Minor is int minor) tests.Add((0x55, 5, 0, minor)); // if r5 != minor goto next
            for (int i = 0; i < tests.Count; i++)
            {
                var (code, dst, src, imm) = tests[i];
                bool jump = code == 0x55;
                // A jump skips the remaining tests and the two-instruction "return 1".
                p.Add(Insn(code, dst, src, jump ? (short)(tests.Count - i - 1 + 2) : (short)0, imm));
            }
            p.Add(Insn(0xb7, 0, 0, 0, 1)); // r0 = 1
            p.Add(Insn(0x95, 0, 0, 0, 0)); // exit
        }
        p.Add(Insn(0xb7, 0, 0, 0, 0)); // r0 = 0
        p.Add(Insn(0x95, 0, 0, 0, 0)); // exit
        var bytes = new byte[p.Count * 8];
        for (int i = 0; i < p.Count; i++) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * 8), p[i]);
        return bytes;
    }

    /// <summary>struct bpf_insn: code, dst_reg:4 | src_reg:4, s16 off, s32 imm (little-endian).</summary>
    private static ulong Insn(int code, int dst, int src, short off, int imm) =>
        (ulong)(byte)code | (ulong)(byte)(dst | (src << 4)) << 8 | (ulong)(ushort)off << 16 | (ulong)(uint)imm << 32;
}
