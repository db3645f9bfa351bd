namespace SystemContainers.Engine.State;

/// <summary>Reads /proc/&lt;pid&gt;/stat: a process's start time (clock ticks since boot), so a stored pid is never mistaken for a recycled one, its parent, its state and a zombie's exit status.</summary>
public static class ProcStat
{
    // Field 22 (starttime) is the 20th after "pid (comm)", field 4 (ppid) the 2nd, field 3 (state) the 1st, field 52 (exit code) the 50th.
    public static ulong? StartTime(int pid) => Field(pid, 19) is string f && ulong.TryParse(f, out ulong t) ? t : null;

    public static int? ParentOf(int pid) => Field(pid, 1) is string f && int.TryParse(f, out int p) ? p : null;

    /// <summary>Whether the process exists and has not exited: a zombie (Z) or dead (X) one has.</summary>
    public static bool IsRunning(int pid) => Field(pid, 0) is string state && state != "Z" && state != "X";

    /// <summary>A zombie's wait status (field 52), which tells how it ended before its parent reaps it; null for any other process.</summary>
    public static int? ZombieWaitStatus(int pid) =>
        Fields(pid) is { Length: > 49 } f && f[0] == "Z" && int.TryParse(f[49], out int status) ? status : null;

    private static string? Field(int pid, int index) => Fields(pid) is { } f && f.Length > index ? f[index] : null;

    /// <summary>The fields after "pid (comm)": the name may hold spaces and parentheses, so they start after the last ')'.</summary>
    private static string[]? Fields(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        int close = text.LastIndexOf(')');
        return close < 0 ? null : text[(close + 2)..].Split(' ');
    }
}
