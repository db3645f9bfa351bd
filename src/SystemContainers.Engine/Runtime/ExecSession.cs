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

    /// <summary>Runs to completion, collecting stdout and stderr (non-interactive sessions).</summary>
    public async Task<ExecOutput> CollectAsync(CancellationToken ct)
    {
        Stdin?.Dispose();
        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        await Task.WhenAll(Stdout!.CopyToAsync(stdout, ct), Stderr!.CopyToAsync(stderr, ct));
        var (code, error) = await Completion;
        if (error is not null) stderr.Write(System.Text.Encoding.UTF8.GetBytes(error + "\n"));
        return new ExecOutput(code, stdout.ToArray(), stderr.ToArray());
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
