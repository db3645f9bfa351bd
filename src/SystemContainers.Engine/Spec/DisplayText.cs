namespace SystemContainers.Engine.Spec;

/// <summary>Untrusted text as an error message shows it: control characters (a newline in a name) escaped, so the message stays one line that says what was sent.</summary>
public static class DisplayText
{
    public static string Escape(string? text) =>
        string.Concat((text ?? "").Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
}
