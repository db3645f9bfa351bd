namespace SystemContainers.Engine.State;

/// <summary>Reads /proc/&lt;pid&gt;/stat: a process's start time (clock ticks since boot), so a stored pid is never mistaken for a recycled one, and its parent.</summary>
public static class ProcStat
{
    // Field 22 (starttime) is the 20th after "pid (comm)", field 4 (ppid) the 2nd, field 3 (state) the 1st.
    public static ulong? StartTime(int pid) => Field(pid, 19) is string f && ulong.TryParse(f, out ulong t) ? t : null;

    public static int? ParentOf(int pid) => Field(pid, 1) is string f && int.TryParse(f, out int p) ? p : null;

    /// <summary>Whether the process exists and has not exited: a zombie (Z) or dead (X) one has.</summary>
    public static bool IsRunning(int pid) => Field(pid, 0) is string state && state != "Z" && state != "X";

    private static string? Field(int pid, int index)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        int close = text.LastIndexOf(')');
        if (close < 0) return null;
        var fields = text[(close + 2)..].Split(' ');
        return fields.Length > index ? fields[index] : null;
    }
}
