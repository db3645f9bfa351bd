using System.Text;
using System.Text.RegularExpressions;

namespace SystemContainers.Engine.Spec;

/// <summary>
/// How a snapshot made without a name is named (snapshots.pattern, default snap%d). Two parts
/// of LXD's pongo2 templates are supported: %d, a number one above the highest taken, and
/// {{ creation_date|date:'LAYOUT' }}, the creation time in the daemon's time zone written with
/// Go's reference layout tokens 2006 (year), 01 (month), 02 (day), 15 (hour), 04 (minute) and
/// 05 (second); other layout characters are kept as they are. A pattern without %d whose name
/// is taken gets -1, -2, ... appended.
/// </summary>
public sealed partial class SnapshotPattern
{
    public const string DefaultText = "snap%d";

    // The Go layout tokens, longest first where one starts another.
    private static readonly (string Token, string Format)[] Layout =
        [("2006", "yyyy"), ("01", "MM"), ("02", "dd"), ("15", "HH"), ("04", "mm"), ("05", "ss")];

    [GeneratedRegex("""\{\{\s*creation_date\s*\|\s*date\s*:\s*(?:'([^']*)'|"([^"]*)")\s*\}\}""")]
    private static partial Regex DateExpression();

    private SnapshotPattern(string text) => Text = text;

    public string Text { get; }

    public static SnapshotPattern Default { get; } = new(DefaultText);

    /// <summary>Parses a pattern; one that uses other template parts, or cannot give a valid snapshot name, is refused.</summary>
    public static SnapshotPattern Parse(string text)
    {
        var pattern = new SnapshotPattern(text);
        string sample = pattern.Render(new DateTime(2006, 1, 2, 15, 4, 5), "0");
        if (sample.Contains("{{") || sample.Contains("}}") || sample.Contains("{%"))
            throw EngineException.Invalid("InvalidSnapshotPattern",
                $"snapshot pattern '{DisplayText.Escape(text)}' is invalid: of the template forms only %d and {{{{ creation_date|date:'2006-01-02_15-04-05' }}}} are supported");
        if (!SnapshotName.IsValid(sample))
            throw EngineException.Invalid("InvalidSnapshotPattern",
                $"snapshot pattern '{DisplayText.Escape(text)}' is invalid: it gives names such as '{DisplayText.Escape(sample)}'; {SnapshotName.Rule}");
        return pattern;
    }

    /// <summary>
    /// The name the pattern gives at that time: with %d, one more than the highest number of the
    /// taken names it gives then (as LXD numbers them, so later snapshots sort later and a deleted
    /// one's name is not given again while later ones remain); without, the plain name or the
    /// first free suffix.
    /// </summary>
    public string NextName(DateTime wallClock, IReadOnlyCollection<string> taken)
    {
        if (Text.Contains("%d"))
        {
            const string Placeholder = "\u0000";
            var numbered = new Regex("^" + Regex.Escape(Render(wallClock, Placeholder)).Replace(Regex.Escape(Placeholder), "([0-9]{1,9})") + "\\z");
            int next = taken.Select(n => numbered.Match(n)).Where(m => m.Success)
                .Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 1).DefaultIfEmpty(0).Max();
            return Render(wallClock, next.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        string plain = Render(wallClock, "");
        if (!taken.Contains(plain)) return plain;
        for (int i = 1; ; i++)
            if ($"{plain}-{i}" is var name && !taken.Contains(name)) return name;
    }

    private string Render(DateTime wallClock, string number) =>
        DateExpression().Replace(Text, m => GoLayout(m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value, wallClock))
            .Replace("%d", number);

    private static string GoLayout(string layout, DateTime t)
    {
        var s = new StringBuilder();
        for (int i = 0; i < layout.Length;)
        {
            var token = Layout.FirstOrDefault(l => string.CompareOrdinal(layout, i, l.Token, 0, l.Token.Length) == 0);
            if (token.Token is null)
            {
                s.Append(layout[i++]);
                continue;
            }
            s.Append(t.ToString(token.Format, System.Globalization.CultureInfo.InvariantCulture));
            i += token.Token.Length;
        }
        return s.ToString();
    }
}
