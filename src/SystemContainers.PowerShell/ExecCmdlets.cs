using System.Collections;
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
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ContainerNameCompleter))]
    public string[] Name { get; set; } = [];

    [Parameter(Mandatory = true, Position = 1, ValueFromRemainingArguments = true)]
    public string[] Command { get; set; } = [];

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

    protected override void ProcessRecord()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in Environment ?? new Hashtable()) env[e.Key.ToString()!] = e.Value?.ToString() ?? "";
        var request = new ExecCommandRequest(Command, env, WorkingDirectory, User, Group);
        foreach (var name in ExpandContainerNames(Name))
        {
            if (!TryCall(c => c.ExecAsync(name, request, Cancel), name, out var result)) continue;
            SessionState.PSVariable.Set("LASTEXITCODE", result.Return);
            if (PassThru)
            {
                WriteObject(new SystemContainerCommandResult
                {
                    Container = name, Command = Command, ExitCode = result.Return, Stdout = result.Stdout, Stderr = result.Stderr,
                });
                continue;
            }
            foreach (var line in Lines(result.Stdout)) WriteObject(line);
            foreach (var line in Lines(result.Stderr))
                WriteInformation(new HostInformationMessage { Message = line, NoNewLine = false }, ["stderr", "PSHOST"]);
            if (result.Return != 0)
            {
                string tail = Lines(result.Stderr).LastOrDefault() is string last ? $": {last}" : "";
                WriteError(new ErrorRecord(
                    new SystemContainerCommandException($"'{string.Join(' ', Command)}' in container '{name}' exited with code {result.Return}{tail}", result.Return),
                    "CommandFailed", ErrorCategory.NotSpecified, name));
            }
        }
    }

    private static IEnumerable<string> Lines(string text) =>
        text.Length == 0 ? [] : text.TrimEnd('\n').Split('\n');
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
