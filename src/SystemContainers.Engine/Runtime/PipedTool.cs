using System.Diagnostics;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// A host tool fed from one stream and read into another (tar, btrfs send and receive, zstd):
/// it only moves bytes, so a stream never lands in a temporary file. Its stderr is kept for the
/// error; disposing kills it if the caller stopped early.
/// </summary>
public sealed class PipedTool : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _stderr;
    private readonly Task _feed;

    private PipedTool(string tool, IReadOnlyList<string> args, Stream? input, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(tool, args)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            _process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new EngineException(FailureKind.Failed, "ToolMissing", $"cannot run {tool}: {e.Message}");
        }
        _stderr = _process.StandardError.ReadToEndAsync(ct);
        var stdin = _process.StandardInput.BaseStream;
        if (input is not null) Widen(stdin);
        _feed = input is null ? Task.Run(stdin.Dispose, ct) : Task.Run(async () =>
        {
            try
            {
                await input.CopyToAsync(stdin, PipeBytes, ct);
            }
            finally
            {
                // The tool reads to the end it is given; a tool that stopped reading early closed the pipe (EPIPE), its exit says why.
                try { stdin.Dispose(); } catch (IOException) { }
            }
        }, ct);
        Output = _process.StandardOutput.BaseStream;
        Widen(Output);
    }

    /// <summary>The kernel pipes a tool reads from and writes into hold 1 MiB rather than 64 KiB.</summary>
    public const int PipeBytes = 1 << 20;

    /// <summary>
    /// A tool's pipes are widened (best effort: a host whose pipe-max-size is lower keeps the
    /// default), so a reader slower than the tool takes its output in reads of up to 1 MiB: each read is
    /// a hop through the in-process pipes behind it, and 10 KiB ones (tar's records) made the hops cost
    /// more than the bytes; its input is fed in writes of as much, fewer wakeups of a receiving tool.
    /// </summary>
    private static void Widen(Stream pipeEnd)
    {
        const int F_SETPIPE_SZ = 1031;
        if (pipeEnd is System.IO.Pipes.PipeStream pipe) Interop.Libc.fcntl((int)pipe.SafePipeHandle.DangerousGetHandle(), F_SETPIPE_SZ, PipeBytes);
    }

    /// <summary>What the tool writes.</summary>
    public Stream Output { get; }

    /// <summary>Starts tool; its stdin is fed from input (or closed at once).</summary>
    public static PipedTool Start(string tool, IReadOnlyList<string> args, Stream? input, CancellationToken ct) => new(tool, args, input, ct);

    /// <summary>Runs tool from input to output and waits for it; a non-zero exit is an error naming what.</summary>
    public static async Task RunAsync(string tool, IReadOnlyList<string> args, Stream? input, Stream? output, string what, CancellationToken ct)
    {
        using var run = Start(tool, args, input, ct);
        await (output is null ? run.Output.CopyToAsync(Stream.Null, ct) : run.Output.CopyToAsync(output, PipeBytes, ct));
        await run.WaitAsync(what, ct);
    }

    /// <summary>Waits for the tool to end and for its input to be fed; what names the step in the error.</summary>
    public async Task WaitAsync(string what, CancellationToken ct)
    {
        await _process.WaitForExitAsync(ct);
        string error = (await _stderr).Trim();
        Exception? feedFailure = null;
        try { await _feed; }
        catch (IOException e) { feedFailure = e; }
        if (_process.ExitCode != 0)
            throw new EngineException(FailureKind.Failed, "ToolFailed", $"cannot {what}: {Path.GetFileName(_process.StartInfo.FileName)} exit {_process.ExitCode}: {error}");
        if (feedFailure is not null) throw new EngineException(FailureKind.Failed, "ToolFailed", $"cannot {what}: {feedFailure.Message}");
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            try { _process.Kill(); } catch (InvalidOperationException) { }
        }
        _process.WaitForExit();
        _process.Dispose();
        // The feed must be done with its input before the caller reads that input again (the rest of a refused request).
        try { _feed.Wait(TimeSpan.FromSeconds(30)); }
        catch (AggregateException) { }
    }
}
