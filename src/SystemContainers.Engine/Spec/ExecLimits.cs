using System.Text;

namespace SystemContainers.Engine.Spec;

/// <summary>
/// What a container's processes may be started with, checked before sc-init runs so that no exec
/// or start fails later in execve (E2BIG) or in the line-based launch plan: at most
/// <see cref="MaxArguments"/> arguments and <see cref="MaxVariables"/> environment variables; each
/// argument, and each NAME=value, at most <see cref="MaxStringBytes"/> bytes of UTF-8 (the kernel's
/// MAX_ARG_STRLEN less its NUL); all of them together at most <see cref="MaxTotalBytes"/> (half the
/// kernel's ARG_MAX under the usual 8 MiB stack), of which a container's environment.* keys may
/// use half. No string may hold a NUL (execve ends it there) or a newline (it would end the plan's line);
/// a variable's name is non-empty and holds neither '=' nor a control character.
/// </summary>
public static class ExecLimits
{
    public const int MaxArguments = 1024;
    public const int MaxVariables = 1024;
    public const int MaxStringBytes = 128 * 1024 - 1;
    public const int MaxTotalBytes = 1024 * 1024;
    public const int MaxConfigEnvironmentBytes = MaxTotalBytes / 2;
    /// <summary>A working directory is one path: PATH_MAX less its NUL.</summary>
    public const int MaxPathBytes = 4095;

    /// <summary>Checks a command line and its whole environment; the error names the first bad entry.</summary>
    public static void CheckProcess(IReadOnlyList<string?> arguments, IReadOnlyDictionary<string, string> environment)
    {
        if (arguments.Count == 0 || string.IsNullOrEmpty(arguments[0]))
            throw EngineException.Invalid("InvalidCommand", "the command to run must not be empty");
        if (arguments.Count > MaxArguments)
            throw EngineException.Invalid("InvalidCommand", $"the command has {arguments.Count} arguments; at most {MaxArguments} are allowed");
        long total = 0;
        for (int i = 0; i < arguments.Count; i++)
        {
            string arg = arguments[i] ?? throw EngineException.Invalid("InvalidCommand", $"argument {i} of the command is null");
            total += CheckString(arg, $"argument {i} of the command", "InvalidCommand");
        }
        total += CheckEnvironment(environment, "InvalidEnvironment");
        if (total > MaxTotalBytes)
            throw EngineException.Invalid("InvalidCommand", $"the command's arguments and environment take {total} bytes; at most {MaxTotalBytes} are allowed");
    }

    /// <summary>Checks variables (names and values); returns the bytes they take as NAME=value strings.</summary>
    public static long CheckEnvironment(IReadOnlyDictionary<string, string> environment, string reason)
    {
        if (environment.Count > MaxVariables)
            throw EngineException.Invalid(reason, $"{environment.Count} environment variables; at most {MaxVariables} are allowed");
        long total = 0;
        foreach (var (name, value) in environment)
        {
            CheckVariableName(name, reason);
            if (value is null) throw EngineException.Invalid(reason, $"environment variable '{name}' has no value");
            total += CheckString($"{name}={value}", $"environment variable '{name}'", reason);
        }
        return total;
    }

    /// <summary>Checks a variable's name; configKey names the config key it came from, for the message.</summary>
    public static void CheckVariableName(string name, string reason, string? configKey = null)
    {
        if (name.Length == 0 || name.Contains('=') || name.Any(char.IsControl))
            throw EngineException.Invalid(reason, (configKey is null ? "" : $"config key '{DisplayText.Escape(configKey)}': ") +
                $"environment variable name '{DisplayText.Escape(name)}' is invalid: it must be non-empty, without '=' or control characters");
    }

    public static void CheckWorkingDirectory(string cwd)
    {
        if (!cwd.StartsWith('/'))
            throw EngineException.Invalid("InvalidWorkingDirectory", $"working directory '{DisplayText.Escape(cwd)}' must be an absolute path in the container");
        if (cwd.Contains('\0') || cwd.Contains('\n') || Encoding.UTF8.GetByteCount(cwd) > MaxPathBytes)
            throw EngineException.Invalid("InvalidWorkingDirectory",
                $"working directory '{DisplayText.Escape(cwd[..Math.Min(cwd.Length, 80)])}' must be a path of at most {MaxPathBytes} bytes without NUL or newline characters");
    }

    private static int CheckString(string value, string what, string reason)
    {
        if (value.Contains('\0')) throw EngineException.Invalid(reason, $"{what} contains a NUL character");
        if (value.Contains('\n')) throw EngineException.Invalid(reason, $"{what} contains a newline, which a launch plan cannot carry");
        int bytes = Encoding.UTF8.GetByteCount(value);
        if (bytes > MaxStringBytes) throw EngineException.Invalid(reason, $"{what} is {bytes} bytes; at most {MaxStringBytes} are allowed");
        return bytes + 1;
    }
}
