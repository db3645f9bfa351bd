using System.Runtime.InteropServices;

namespace SystemContainers.PowerShell;

/// <summary>
/// Puts the local terminal in raw mode for Enter-SystemContainer and restores it. Done with
/// tcsetattr in-process: .NET restores the terminal after a child process such as stty exits.
/// </summary>
internal sealed partial class RawTerminal : IDisposable
{
    private const int TCSANOW = 0, TermiosSize = 60;
    private readonly byte[] _saved = new byte[TermiosSize];

    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcgetattr(int fd, byte[] termios);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int tcsetattr(int fd, int action, byte[] termios);

    [LibraryImport("libc")]
    private static partial void cfmakeraw(byte[] termios);

    private RawTerminal() { }

    /// <summary>Raw mode on stdin, or null when stdin is not a terminal.</summary>
    public static RawTerminal? Enter()
    {
        var t = new RawTerminal();
        if (tcgetattr(0, t._saved) != 0) return null;
        var raw = (byte[])t._saved.Clone();
        cfmakeraw(raw);
        return tcsetattr(0, TCSANOW, raw) == 0 ? t : null;
    }

    public void Dispose() => tcsetattr(0, TCSANOW, _saved);
}
