using Microsoft.Win32.SafeHandles;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Containers;

/// <summary>Starts a command in the container's namespaces and cgroup (as a child of its init's cgroup).</summary>
internal sealed class ExecContainer(EngineParts parts)
{
    public ExecSession Run(Container c, ExecRequest request)
    {
        string name = c.Name;
        var (state, live) = c.Snapshot();
        if (live is null || !state.CanExec())
            throw state switch
            {
                ContainerState.Damaged => c.Damaged(),
                ContainerState.Frozen => EngineException.Conflict("Frozen", $"container '{name}' is frozen; resume it first"),
                ContainerState.Stopping => EngineException.Conflict("ContainerBusy", $"container '{name}' is stopping"),
                _ => c.NotRunning(),
            };
        if (request.WorkingDirectory is { } cwd) ExecLimits.CheckWorkingDirectory(cwd);
        CheckMapped(c, "uid", request.User);
        CheckMapped(c, "gid", request.Group);
        var config = c.Spec;
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = ContainerProcess.DefaultPath, ["HOME"] = request.User == 0 ? "/root" : "/", ["container"] = "systemcontainers",
        };
        if (request.Interactive) env["TERM"] = "xterm-256color";
        foreach (var (k, v) in config.Environment) env[k] = v;
        foreach (var (k, v) in request.Environment ?? new Dictionary<string, string>())
        {
            ExecLimits.CheckVariableName(k, "InvalidEnvironment");
            env[k] = v;
        }
        ExecLimits.CheckProcess(request.Command, env);
        var plan = new LaunchPlan()
            .Add("userns", c.Record.IdMap is null ? 0 : 1)
            .Add("uid", request.User)
            .Add("gid", request.Group)
            .Add("cwd", request.WorkingDirectory ?? (request.User == 0 ? "/root" : "/"))
            .Add("home", request.WorkingDirectory is null ? 1 : 0)
            .Add("pty", request.Interactive ? 1 : 0)
            .Add(parts.Cgroups.JoinOf(live.Pid))
            .Confine(config)
            .AddAll("env", env.Select(kv => $"{kv.Key}={kv.Value}"))
            .AddAll("arg", request.Command);

        try
        {
            if (request.Interactive)
            {
                var (helper, terminal) = parts.ScInit.ExecOnTerminal(plan.Add("rows", request.Height).Add("cols", request.Width), live.Pidfd);
                return new ExecSession(helper, null, null, null, terminal);
            }
            return ExecOnPipes(plan, live.Pidfd);
        }
        catch (ScInitException e)
        {
            throw new EngineException(FailureKind.Failed, "ExecFailed", $"cannot run '{request.Command[0]}' in container '{name}': {e.Message}");
        }
    }

    /// <summary>
    /// An exec id must be one the container's map gives it: an unmapped one (or -1, which the
    /// set*id calls read as "keep") would leave the command with host ids.
    /// </summary>
    private static void CheckMapped(Container c, string kind, int id)
    {
        long size = c.Record.IdMap?.Size ?? uint.MaxValue;
        if (id < 0 || id >= size)
            throw EngineException.Invalid("InvalidUser", $"{kind} {id} is not mapped in container '{c.Name}' (it maps 0 to {size - 1})");
    }

    private ExecSession ExecOnPipes(LaunchPlan plan, SafeFd initPidfd)
    {
        var (inRead, inWrite) = Sys.Pipe();
        var (outRead, outWrite) = Sys.Pipe();
        var (errRead, errWrite) = Sys.Pipe();
        try
        {
            ExecHelper helper;
            using (inRead)
            using (outWrite)
            using (errWrite)
                helper = parts.ScInit.Exec(plan, initPidfd, inRead, outWrite, errWrite);
            return new ExecSession(helper, ToStream(inWrite, FileAccess.Write), ToStream(outRead, FileAccess.Read),
                ToStream(errRead, FileAccess.Read), null);
        }
        catch
        {
            inWrite.Dispose();
            outRead.Dispose();
            errRead.Dispose();
            throw;
        }
    }

    private static FileStream ToStream(SafeFd fd, FileAccess access)
    {
        var handle = new SafeFileHandle(fd.DangerousGetHandle(), ownsHandle: true);
        fd.SetHandleAsInvalid();
        return new FileStream(handle, access, 0);
    }
}
