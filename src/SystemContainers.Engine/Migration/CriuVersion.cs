namespace SystemContainers.Engine.Migration;

/// <summary>A criu release as its VERSION answer gives it (4.2.1 is major 4, minor 2, sublevel 1).</summary>
public sealed record CriuVersion(int Major, int Minor, int Sublevel, string? GitId = null) : IComparable<CriuVersion>
{
    /// <summary>
    /// The oldest criu that dumps and restores on current kernels: 3.17 (Debian 12) fails there and
    /// 4.1.1 (Debian 13) hangs in its dump where hardware breakpoints are missing.
    /// </summary>
    public static readonly CriuVersion Minimum = new(4, 2, 1);

    public int CompareTo(CriuVersion? other) =>
        other is null ? 1
        : Major != other.Major ? Major.CompareTo(other.Major)
        : Minor != other.Minor ? Minor.CompareTo(other.Minor)
        : Sublevel.CompareTo(other.Sublevel);

    public bool IsAtLeast(CriuVersion other) => CompareTo(other) >= 0;

    public override string ToString() => $"{Major}.{Minor}.{Sublevel}";
}
