using System.Collections;
using System.Text;
using System.Management.Automation;
using System.Net.WebSockets;
using System.Text.Json;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>A command in a container exited non-zero; the exit code travels with the error.</summary>
public sealed class SystemContainerCommandException(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

[Cmdlet(VerbsLifecycle.Invoke, "SystemContainerCommand")]
[OutputType(typeof(string))]
[OutputType(typeof(SystemContainerCommandResult))]
public sealed class InvokeSystemContainerCommandCommand : SystemContainerCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    // No alias: any name would take a native option that is its prefix (an "ArgumentList" took uname's -a).
    [Parameter(Mandatory = true, Position = 1, ValueFromRemainingArguments = true)]
    public string[] Command { get; set; } = [];

    /// <summary>The command's stdin: each object piped in (or given) becomes one line of text.</summary>
    [Parameter(ValueFromPipeline = true)]
    public PSObject? InputObject { get; set; }

    [Parameter]
    public Hashtable? Environment { get; set; }

    [Parameter]
    public string? WorkingDirectory { get; set; }

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int User { get; set; }

    [Parameter]
    [ValidateRange(0, int.MaxValue)]
    public int Group { get; set; }

    /// <summary>Return one result object (exit code, stdout, stderr) instead of the output lines.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private readonly StringBuilder _stdin = new();
    private string[]? _stdinTargets;

    protected override void ProcessRecord()
    {
        // Containers piped in are targets; anything else piped in (or -InputObject) is input,
        // and the command runs once all of it has arrived.
        if (InputObject is not null && InputObject.BaseObject is not SystemContainer)
        {
            _stdin.Append(InputObject.ToString()).Append('\n');
            _stdinTargets ??= Name;
            return;
        }
        Run(Name, null);
    }

    protected override void EndProcessing()
    {
        if (_stdinTargets is not null) Run(_stdinTargets, Encoding.UTF8.GetBytes(_stdin.ToString()));
    }

    private void Run(string[] names, byte[]? stdin)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Environment ?? new Hashtable()) env[e.Key.ToString()!] = e.Value?.ToString() ?? "";
        var request = new ExecCommandRequest(Command, env, WorkingDirectory, User, Group);
        foreach (var name in ExpandContainerNames(names))
        {
            if (!TryCall(c => c.ExecStreamAsync(name, request, Cancel), name, out var socket)) continue;
            var stdout = new LineSplitter();
            var stderr = new LineSplitter();
            int? exited;
            using (socket)
            {
                try
                {
                    exited = Pump(socket, stdin, stdout, stderr);
                }
                catch (SystemContainersApiException e)
                {
                    WriteError(ToErrorRecord(e, name));
                    continue;
                }
                catch (OperationCanceledException) when (Cancel.IsCancellationRequested)
                {
                    // Ctrl+C: the daemon ends a command whose websocket is gone.
                    socket.Abort();
                    throw new PipelineStoppedException();
                }
            }
            // The close frame carries the exit code; a daemon that went away sent none.
            if (exited is not int code)
            {
                WriteError(new ErrorRecord(new InvalidOperationException($"the command in container '{name}' ended without an exit code: its websocket closed first"),
                    "ExecFailed", ErrorCategory.NotSpecified, name));
                continue;
            }
            SessionState.PSVariable.Set("LASTEXITCODE", code);
            if (PassThru)
            {
                WriteObject(new SystemContainerCommandResult
                {
                    Container = name, Command = [.. Command], ExitCode = code, Stdout = stdout.Text, Stderr = stderr.Text,
                });
                continue;
            }
            foreach (var line in stdout.Flush()) WriteObject(line);
            foreach (var line in stderr.Flush()) WriteStderr(line);
            if (code != 0)
            {
                string tail = stderr.LastLine is string last ? $": {last}" : "";
                WriteError(new ErrorRecord(
                    new SystemContainerCommandException($"'{string.Join(' ', Command)}' in container '{name}' exited with code {code}{tail}", code),
                    "CommandFailed", ErrorCategory.NotSpecified, name));
            }
        }
    }

    /// <summary>
    /// Sends stdin, then writes each line of output as it arrives, until the command ends.
    /// Returns the exit code from the daemon's close frame, or null when it sent none.
    /// </summary>
    private int? Pump(ClientWebSocket socket, byte[]? stdin, LineSplitter stdout, LineSplitter stderr)
    {
        try
        {
            if (stdin is { Length: > 0 })
                for (int off = 0; off < stdin.Length; off += 65536)
                    socket.SendAsync(stdin.AsMemory(off, Math.Min(65536, stdin.Length - off)), WebSocketMessageType.Binary, true, Cancel).GetAwaiter().GetResult();
            var close = JsonSerializer.SerializeToUtf8Bytes(new ExecControl("close-stdin"), Wire.Json);
            socket.SendAsync(close, WebSocketMessageType.Text, true, Cancel).GetAwaiter().GetResult();
        }
        // A daemon that refused the request may have closed before the input: its refusal is still to be read.
        catch (WebSocketException) { }
        var buffer = new byte[65537];
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var r = socket.ReceiveAsync(buffer.AsMemory(), Cancel).AsTask().GetAwaiter().GetResult();
                if (r.MessageType == WebSocketMessageType.Close) break;
                // A frame may arrive in parts: its first part carries the stream byte.
                int count = r.Count;
                while (!r.EndOfMessage && count < buffer.Length)
                {
                    r = socket.ReceiveAsync(buffer.AsMemory(count), Cancel).AsTask().GetAwaiter().GetResult();
                    count += r.Count;
                }
                if (r.MessageType == WebSocketMessageType.Text) throw SystemContainersClient.RefusalOf(buffer.AsSpan(0, count));
                if (count < 1) continue;
                var data = buffer.AsSpan(1, count - 1);
                if (buffer[0] == ExecControl.StdoutStream)
                {
                    foreach (var line in stdout.Add(data, keep: PassThru)) WriteObject(line);
                }
                else if (buffer[0] == ExecControl.StderrStream)
                {
                    foreach (var line in stderr.Add(data, keep: PassThru)) WriteStderr(line);
                }
            }
        }
        catch (WebSocketException) { }
        return ExecControl.ExitCodeOf(socket.CloseStatusDescription);
    }

    private void WriteStderr(string line) =>
        WriteInformation(new HostInformationMessage { Message = line, NoNewLine = false }, ["stderr", "PSHOST"]);
}

/// <summary>Cuts a byte stream into lines as it arrives (UTF-8 kept whole across frames); keeps all of it for -PassThru.</summary>
internal sealed class LineSplitter
{
    private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();
    private readonly StringBuilder _pending = new();
    private readonly StringBuilder _all = new();

    public string Text => _all.ToString();

    public string? LastLine { get; private set; }

    /// <summary>The lines completed by data; with keep they are only kept, for the result object.</summary>
    public IEnumerable<string> Add(ReadOnlySpan<byte> data, bool keep)
    {
        var chars = new char[_decoder.GetCharCount(data, flush: false)];
        _decoder.GetChars(data, chars, flush: false);
        if (keep)
        {
            _all.Append(chars);
            return [];
        }
        var lines = new List<string>();
        foreach (char ch in chars)
        {
            if (ch != '\n')
            {
                _pending.Append(ch);
                continue;
            }
            lines.Add(LastLine = _pending.ToString());
            _pending.Clear();
        }
        return lines;
    }

    /// <summary>The last line, when the output did not end with a newline.</summary>
    public IEnumerable<string> Flush()
    {
        if (_pending.Length == 0) return [];
        LastLine = _pending.ToString();
        _pending.Clear();
        return [LastLine];
    }
}

[Cmdlet(VerbsCommon.Enter, "SystemContainer")]
[OutputType(typeof(void))]
public sealed class EnterSystemContainerCommand : SystemContainerCmdlet
{
    private (int, int) _size;

    private const string LoginShell = "if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string Name { get; set; } = "";

    /// <summary>What to run instead of a login shell.</summary>
    [Parameter(Position = 1, ValueFromRemainingArguments = true)]
    public string[]? Command { get; set; }

    protected override void ProcessRecord()
    {
        string[] command = Command is { Length: > 0 } ? Command : ["/bin/sh", "-c", LoginShell];
        bool tty = !Console.IsInputRedirected;
        int width = tty ? Console.WindowWidth : 80, height = tty ? Console.WindowHeight : 24;
        var request = new ExecCommandRequest(command, null, null, 0, 0, true, Math.Max(width, 1), Math.Max(height, 1));
        if (!TryCall(c => c.ExecInteractiveAsync(Name, request, Cancel), Name, out var session)) return;
        try
        {
            using var raw = tty ? RawTerminal.Enter() : null;
            _size = (width, height);
            Bridge(session.Socket, tty).GetAwaiter().GetResult();
        }
        finally
        {
            session.Socket.Dispose();
        }
        if (TryCall(c => c.WaitOperationAsync(session.OperationId, 30, Cancel), Name, out var op) &&
            op.Metadata is { ValueKind: JsonValueKind.Object } m && m.TryGetProperty("result", out var r))
            SessionState.PSVariable.Set("LASTEXITCODE", r.GetProperty("return").GetInt32());
    }

    /// <summary>Copies the terminal to the container and back until the remote command ends; passes on resizes.</summary>
    private async Task Bridge(ClientWebSocket socket, bool tty)
    {
        var stdout = Console.OpenStandardOutput();
        var stdin = tty ? null : Console.OpenStandardInput();
        var terminal = tty ? new TerminalInput() : null;
        using var sending = new SemaphoreSlim(1, 1);
        async Task Send(ReadOnlyMemory<byte> data, WebSocketMessageType type)
        {
            await sending.WaitAsync(Cancel);
            try { await socket.SendAsync(data, type, true, Cancel); }
            finally { sending.Release(); }
        }
        using var resize = new Timer(_ =>
        {
            var size = (Console.WindowWidth, Console.WindowHeight);
            if (size == _size || socket.State != WebSocketState.Open) return;
            _size = size;
            var control = JsonSerializer.SerializeToUtf8Bytes(new ExecControl("window-resize", size.WindowWidth, size.WindowHeight), Wire.Json);
            _ = Send(control, WebSocketMessageType.Text);
        }, null, tty ? 250 : Timeout.Infinite, 250);
        // A thread of its own: the terminal read blocks, and must stop with the session.
        var input = new Thread(() =>
        {
            var buf = new byte[4096];
            try
            {
                int n;
                while (socket.State == WebSocketState.Open && (n = terminal is not null ? terminal.Read(buf) : stdin!.Read(buf)) > 0)
                    Send(buf.AsMemory(0, n), WebSocketMessageType.Binary).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException or IOException) { }
        }) { IsBackground = true, Name = "Enter-SystemContainer input" };
        input.Start();
        var buffer = new byte[16384];
        try
        {
            while (socket.State == WebSocketState.Open)
            {
                var r = await socket.ReceiveAsync(buffer, Cancel);
                if (r.MessageType == WebSocketMessageType.Close) break;
                await stdout.WriteAsync(buffer.AsMemory(0, r.Count), Cancel);
                await stdout.FlushAsync(Cancel);
            }
        }
        catch (WebSocketException) { }
        finally
        {
            // The remote side ended: the input pump lets go of the terminal before pwsh's prompt needs it.
            terminal?.Dispose();
            if (terminal is not null && input.Join(TimeSpan.FromSeconds(5))) terminal.Close();
        }
    }
}
