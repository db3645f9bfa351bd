using System.Text;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Runtime;

/// <summary>
/// Runs the native helper: the only code that forks into namespaces (DESIGN.md, "Processes").
/// It runs from a sealed in-memory copy made once, never from the file: a privileged
/// container's root reaches the helper's /proc/&lt;pid&gt;/exe and could otherwise rewrite the host
/// binary through it (CVE-2019-5736). The seals make the copy immutable.
/// </summary>
public sealed class ScInit(string path) : IDisposable
{
    private readonly Lazy<SafeFd> _sealed = new(() => SealedCopy.Of(path));

    /// <summary>What is exec'd: the sealed copy, through the spawned child's own inherited fd.</summary>
    private string Executable => $"/proc/self/fd/{_sealed.Value.Fd}";

    public void Dispose()
    {
        if (_sealed.IsValueCreated) _sealed.Value.Dispose();
    }

    /// <summary>
    /// Creates a container init. Returns its pid once it has exec'd; throws with sc-init's
    /// "cannot X on Y: ERRNO" when any step failed (nothing of the child is left then).
    /// With onChild, the child's pid is handed over while it waits (so its network namespace
    /// can be furnished), and init runs only once onChild returned; if it throws, sc-init kills
    /// the child and the exception is rethrown. Without a console (a plan with "ownconsole 1"),
    /// init's console is made in the container's own devpts and its master is returned.
    /// </summary>
    public (int Pid, SafeFd? Console) Create(LaunchPlan plan, SafeFd? console, Action<int>? onChild = null)
    {
        StepTrace.Mark("start: plan built");
        var (daemonEnd, helperEnd) = Sys.SocketPair();
        using (daemonEnd)
        {
            int helper;
            using (var devnull = console is null ? Sys.Open("/dev/null", Libc.O_RDWR) : null)
            using (helperEnd)
            {
                var stdio = console ?? devnull!;
                helper = Sys.Spawn(Executable, ["sc-init", "create"], [(helperEnd, 3), (stdio, 0), (stdio, 1), (stdio, 2)]);
            }
            StepTrace.Mark("start: sc-init spawned");
            Exception? refused = null;
            bool unread = false;
            string reply = "";
            SafeFd? made = null;
            try
            {
                Sys.WriteAll(daemonEnd, Encoding.UTF8.GetBytes((onChild is null ? plan : plan.Add("netsync", 1)).ToString()));
                if (onChild is not null)
                {
                    reply = ReadLine(daemonEnd);
                    if (reply.StartsWith("child ", StringComparison.Ordinal) && int.TryParse(reply.AsSpan(6).Trim(), out int child))
                    {
                        StepTrace.Mark("start: init cloned");
                        try { onChild(child); }
                        catch (Exception e) { refused = e; }
                        StepTrace.Mark("start: NICs made");
                        Sys.WriteAll(daemonEnd, refused is null ? "go\n"u8 : "abort\n"u8);
                    }
                }
            }
            catch (NativeException e) when (e.Errno == Libc.EPIPE)
            {
                // sc-init exited before it read all it was sent: its reply says why, and it is still to be reaped.
                unread = true;
            }
            finally
            {
                // Init sends its own console before it execs (a "console" line), sc-init its pid after. A sc-init that
                // failed before it read the plan or the go-ahead resets the socket: what it sent is its whole answer.
                (string text, made) = Sys.ReceiveDescriptor(daemonEnd, resetIsEnd: true);
                reply += text + (made is null ? "" : Sys.ReadToEnd(daemonEnd, resetIsEnd: true));
            }
            int rc = Sys.WaitPid(helper);
            try
            {
                var (pid, error) = ParseReply(reply);
                // sc-init answers "abort" with "aborted": the daemon's own error says why. An init that died on its own
                // (a mount it could not make) while the daemon made its NICs fails those with ESRCH: its own error says
                // why, and is what the idmap fallback looks for.
                if (refused is not null && error is null) throw refused;
                if (error is not null) throw new ScInitException(error);
                if (rc != 0 || pid is null)
                    throw new ScInitException(unread ? $"sc-init exited with status {rc} before it read all it was sent" : $"sc-init exited with status {rc}");
                if (console is null && made is null) throw new ScInitException("sc-init sent no console");
                return (pid.Value, made);
            }
            catch
            {
                made?.Dispose();
                throw;
            }
        }
    }

    /// <summary>Reads one line (or up to EOF), a byte at a time so nothing after it is consumed.</summary>
    internal static string ReadLine(SafeFd fd)
    {
        var line = new List<byte>();
        Span<byte> b = stackalloc byte[1];
        while (Sys.Read(fd, b) == 1)
        {
            line.Add(b[0]);
            if (b[0] == (byte)'\n') break;
        }
        return Encoding.UTF8.GetString(line.ToArray());
    }

    /// <summary>Starts a command in a running container; stdio are the given fds.</summary>
    public ExecHelper Exec(LaunchPlan plan, SafeFd initPidfd, SafeFd stdin, SafeFd stdout, SafeFd stderr)
    {
        var (daemonEnd, helperEnd) = Sys.SocketPair();
        try
        {
            int helper;
            using (helperEnd)
                helper = Sys.Spawn(Executable, ["sc-init", "exec"],
                    [(helperEnd, 3), (initPidfd, 4), (stdin, 0), (stdout, 1), (stderr, 2)]);
            Sys.WriteAll(daemonEnd, Encoding.UTF8.GetBytes(plan.ToString()));
            StepTrace.Mark("exec: sc-init spawned");
            return new ExecHelper(helper, daemonEnd);
        }
        catch
        {
            daemonEnd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts a command on a terminal made in the container's own devpts; returns the helper
    /// and the terminal's master, which sc-init sends back over the plan socket.
    /// </summary>
    public (ExecHelper Helper, SafeFd Terminal) ExecOnTerminal(LaunchPlan plan, SafeFd initPidfd)
    {
        var (daemonEnd, helperEnd) = Sys.SocketPair();
        try
        {
            int helper;
            using (var devnull = Sys.Open("/dev/null", Libc.O_RDWR))
            using (helperEnd)
                helper = Sys.Spawn(Executable, ["sc-init", "exec"], [(helperEnd, 3), (initPidfd, 4), (devnull, 0), (devnull, 1), (devnull, 2)]);
            Sys.WriteAll(daemonEnd, Encoding.UTF8.GetBytes(plan.ToString()));
            var (text, terminal) = Sys.ReceiveDescriptor(daemonEnd);
            var exec = new ExecHelper(helper, daemonEnd, text);
            if (terminal is null)
            {
                var (_, error) = exec.Wait();
                exec.Dispose();
                throw new ScInitException(error ?? "sc-init sent no terminal");
            }
            return (exec, terminal);
        }
        catch
        {
            daemonEnd.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Mounts a stopped container's rootfs (the plan's lower, upper, layers and id map) detached:
    /// the returned fd is the only way to it, and the mount goes away when the fd is closed.
    /// </summary>
    public SafeFd MountRootfs(LaunchPlan plan)
    {
        var (daemonEnd, helperEnd) = Sys.SocketPair();
        using (daemonEnd)
        {
            int helper;
            using (helperEnd)
                helper = Sys.Spawn(Executable, ["sc-init", "rootfs"], [(helperEnd, 3)]);
            SafeFd? root = null;
            string reply = "";
            try
            {
                Sys.WriteAll(daemonEnd, Encoding.UTF8.GetBytes(plan.ToString()));
                (reply, root) = Sys.ReceiveDescriptor(daemonEnd);
                reply += Sys.ReadToEnd(daemonEnd);
            }
            finally
            {
                int rc = Sys.WaitPid(helper);
                if (root is null || rc != 0)
                {
                    root?.Dispose();
                    root = null;
                }
            }
            return root ?? throw new ScInitException(ParseReply(reply).Error ?? "sc-init sent no rootfs mount");
        }
    }

    /// <summary>Mounts a new console pty slave over /dev/console in a running container.</summary>
    public void AttachConsole(LaunchPlan plan, SafeFd initPidfd) => RunInContainer("console", plan, initPidfd);

    /// <summary>Mounts a new pty of the container's own devpts over its /dev/console; returns its master.</summary>
    public SafeFd AttachOwnConsole(LaunchPlan plan, SafeFd initPidfd)
    {
        var (daemonEnd, helperEnd) = Sys.SocketPair();
        using (daemonEnd)
        {
            int helper;
            using (helperEnd)
                helper = Sys.Spawn(Executable, ["sc-init", "console"], [(helperEnd, 3), (initPidfd, 4)]);
            Sys.WriteAll(daemonEnd, Encoding.UTF8.GetBytes(plan.Add("ownconsole", 1).ToString()));
            var (reply, master) = Sys.ReceiveDescriptor(daemonEnd);
            int rc = Sys.WaitPid(helper);
            var (_, error) = ParseReply(reply);
            if (master is not null && error is null && rc == 0) return master;
            master?.Dispose();
            throw new ScInitException(error ?? $"sc-init exited with status {rc} without a console");
        }
    }

    /// <summary>Unmounts the plan's "undisk" paths and mounts its disks in a running container.</summary>
    public void ChangeDisks(LaunchPlan plan, SafeFd initPidfd) => RunInContainer("disk", plan, initPidfd);

    /// <summary>Runs a sc-init mode that acts on a running container (fd 4 a pidfd of its init) and reports only an error.</summary>
    private void RunInContainer(string mode, LaunchPlan plan, SafeFd initPidfd)
    {
        var (daemonEnd, helperEnd) = Sys.SocketPair();
        using (daemonEnd)
        {
            int helper;
            using (helperEnd)
                helper = Sys.Spawn(Executable, ["sc-init", mode], [(helperEnd, 3), (initPidfd, 4)]);
            Sys.WriteAll(daemonEnd, Encoding.UTF8.GetBytes(plan.ToString()));
            string reply = Sys.ReadToEnd(daemonEnd);
            int rc = Sys.WaitPid(helper);
            var (_, error) = ParseReply(reply);
            if (error is not null) throw new ScInitException(error);
            if (rc != 0) throw new ScInitException($"sc-init exited with status {rc}");
        }
    }

    internal static (int? Pid, string? Error) ParseReply(string reply)
    {
        int? pid = null;
        string? error = null;
        foreach (var line in reply.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("pid ", StringComparison.Ordinal) && int.TryParse(line.AsSpan(4), out int p)) pid = p;
            else if (line.StartsWith("error ", StringComparison.Ordinal)) error ??= line[6..];
        }
        return (pid, error);
    }
}

/// <summary>A running "sc-init exec": owns the helper's report channel; Wait reaps it.</summary>
public sealed class ExecHelper(int pid, SafeFd channel, string alreadyRead = "") : IDisposable
{
    private readonly TaskCompletionSource<int?> _commandPid = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int HelperPid { get; } = pid;

    /// <summary>Waits for the command; an error line means it never ran (exit 127 for ENOENT, else 126).</summary>
    public (int ExitCode, string? Error) Wait()
    {
        // The helper reports the command's host pid first ("pid N"), then nothing until it exits.
        var reply = new StringBuilder(alreadyRead);
        while (ScInit.ParseReply(reply.ToString()).Pid is null && ScInit.ReadLine(channel) is { Length: > 0 } line) reply.Append(line);
        _commandPid.TrySetResult(ScInit.ParseReply(reply.ToString()).Pid);
        StepTrace.Mark("exec: command started");
        reply.Append(Sys.ReadToEnd(channel));
        StepTrace.Mark("exec: command ended");
        _commandPid.TrySetResult(null);
        int rc = Sys.WaitPid(HelperPid);
        var (_, error) = ScInit.ParseReply(reply.ToString());
        if (error is null) return (rc, null);
        return (error.EndsWith("ENOENT", StringComparison.Ordinal) ? 127 : 126, error);
    }

    /// <summary>
    /// Signals the command's process group (it is a session leader). Safe against pid reuse: the
    /// helper is its parent and reaps it only after the command has exited, so while the helper
    /// still has it as a child the pid is the command's. False when the command is gone.
    /// </summary>
    public async Task<bool> SignalAsync(int signal)
    {
        if (await _commandPid.Task is not int command) return false;
        if (ProcStat.ParentOf(command) != HelperPid) return false;
        return Libc.kill(-command, signal) == 0;
    }

    public void Dispose() => channel.Dispose();
}

public sealed class ScInitException(string message) : Exception(message);
