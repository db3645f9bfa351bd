namespace SystemContainers.Api;

/// <summary>
/// A list of strings that prints as "a, b": what Export-Csv, string interpolation and ToString
/// show of addresses, aliases and names, where a plain array shows "System.String[]".
/// </summary>
public sealed class TextList : List<string>
{
    public TextList() { }

    public TextList(IEnumerable<string> items) : base(items) { }

    public override string ToString() => string.Join(", ", this);
}
