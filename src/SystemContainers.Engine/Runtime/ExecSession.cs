using Microsoft.Win32.SafeHandles;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// A command running in a container. Non-interactive: Stdin/Stdout/Stderr are pipes.
/// Interactive: Terminal is the pty master (read and write), Stdout/Stderr are null.
/// </summary>
public sealed class ExecSession : IDisposable
{
    private readonly ExecHelper _helper;
    private readonly SafeFd? _ptyMaster;

    internal ExecSession(ExecHelper helper, Stream? stdin, Stream? stdout, Stream? stderr, SafeFd? ptyMaster)
    {
        _helper = helper;
        Stdin = stdin;
        Stdout = stdout;
        Stderr = stderr;
        _ptyMaster = ptyMaster;
        if (ptyMaster is not null)
            Terminal = new FileStream(new SafeFileHandle(ptyMaster.DangerousGetHandle(), ownsHandle: false), FileAccess.ReadWrite, 0);
        Completion = Task.Factory.StartNew(() => _helper.Wait(), TaskCreationOptions.LongRunning);
    }

    public Stream? Stdin { get; }
    public Stream? Stdout { get; }
    public Stream? Stderr { get; }
    public Stream? Terminal { get; }

    /// <summary>The exit code (126/127 with an error when the command could not be started).</summary>
    public Task<(int ExitCode, string? Error)> Completion { get; }

    public void Resize(ushort width, ushort height)
    {
        if (_ptyMaster is not null) Sys.SetWindowSize(_ptyMaster, height, width);
    }

    /// <summary>How much of each stream a recorded (non-streamed) exec keeps; the rest is read and dropped.</summary>
    public const int RecordLimit = 8 << 20;

    private static readonly TimeSpan KillGrace = TimeSpan.FromSeconds(5);

    /// <summary>Sends a signal to the command's process group; false when it has already ended.</summary>
    public Task<bool> SignalAsync(int signal) => _helper.SignalAsync(signal);

    /// <summary>Ends the command: SIGTERM to its process group, then SIGKILL if it is still there after a grace period.</summary>
    public async Task CancelAsync()
    {
        if (!await SignalAsync(15)) return;
        if (await Task.WhenAny(Completion, Task.Delay(KillGrace)) != Completion) await SignalAsync(9);
    }

    /// <summary>
    /// Runs to completion, keeping up to <see cref="RecordLimit"/> bytes of stdout and of stderr
    /// (non-interactive sessions); cancelling ends the command.
    /// </summary>
    public async Task<ExecOutput> CollectAsync(CancellationToken ct)
    {
        Stdin?.Dispose();
        using var cancel = ct.Register(() => _ = CancelAsync());
        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        var truncated = await Task.WhenAll(CopyCappedAsync(Stdout!, stdout), CopyCappedAsync(Stderr!, stderr));
        var (code, error) = await Completion;
        ct.ThrowIfCancellationRequested();
        if (truncated[0]) stderr.Write(System.Text.Encoding.UTF8.GetBytes($"[stdout truncated after {RecordLimit >> 20} MiB: stream the command's output for more]\n"));
        if (truncated[1]) stderr.Write(System.Text.Encoding.UTF8.GetBytes($"[stderr truncated after {RecordLimit >> 20} MiB]\n"));
        if (error is not null) stderr.Write(System.Text.Encoding.UTF8.GetBytes(error + "\n"));
        return new ExecOutput(code, stdout.ToArray(), stderr.ToArray());
    }

    private static async Task<bool> CopyCappedAsync(Stream from, MemoryStream to)
    {
        var buffer = new byte[65536];
        bool truncated = false;
        int n;
        while ((n = await from.ReadAsync(buffer)) > 0)
        {
            int keep = (int)Math.Min(n, Math.Max(0, RecordLimit - to.Length));
            to.Write(buffer, 0, keep);
            truncated |= keep < n;
        }
        return truncated;
    }

    public void Dispose()
    {
        Stdin?.Dispose();
        Stdout?.Dispose();
        Stderr?.Dispose();
        Terminal?.Dispose();
        _ptyMaster?.Dispose();
        _helper.Dispose();
    }
}

public sealed record ExecOutput(int ExitCode, byte[] Stdout, byte[] Stderr);
