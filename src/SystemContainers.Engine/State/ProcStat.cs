namespace SystemContainers.Engine.State;

/// <summary>Reads a process's start time (clock ticks since boot) so a stored pid is never mistaken for a recycled one.</summary>
public static class ProcStat
{
    public static ulong? StartTime(int pid)
    {
        string text;
        try { text = File.ReadAllText($"/proc/{pid}/stat"); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        int close = text.LastIndexOf(')');
        if (close < 0) return null;
        var fields = text[(close + 2)..].Split(' ');
        // Field 22 (starttime) is the 20th after "pid (comm)".
        return fields.Length > 19 && ulong.TryParse(fields[19], out ulong t) ? t : null;
    }
}
