using System.Globalization;

namespace SystemContainers.Engine.Spec;

/// <summary>
/// A cron schedule as snapshots.schedule takes it (LXD's form): five fields
/// (minute hour day-of-month month day-of-week) with *, values, ranges a-b, steps /n, lists and
/// the names jan..dec and sun..sat; or one or more of the aliases @hourly, @daily, @midnight,
/// @weekly, @monthly, @yearly and @annually, comma-separated. As in Vixie cron, when both the
/// day of month and the day of week are restricted (neither starts with *) a day matching
/// either is due; day of week 7 is Sunday like 0.
/// </summary>
public sealed class CronSchedule
{
    private static readonly string[] MonthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    private static readonly string[] DayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

    private static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["@hourly"] = "0 * * * *",
        ["@daily"] = "0 0 * * *",
        ["@midnight"] = "0 0 * * *",
        ["@weekly"] = "0 0 * * 0",
        ["@monthly"] = "0 0 1 * *",
        ["@yearly"] = "0 0 1 1 *",
        ["@annually"] = "0 0 1 1 *",
    };

    private readonly IReadOnlyList<Entry> _entries;

    private CronSchedule(string text, IReadOnlyList<Entry> entries)
    {
        Text = text;
        _entries = entries;
    }

    /// <summary>The schedule as it was given.</summary>
    public string Text { get; }

    /// <summary>Parses a schedule; a bad one is an InvalidArgument error naming the field and what is wrong with it.</summary>
    public static CronSchedule Parse(string text)
    {
        string trimmed = text.Trim();
        if (trimmed.Length == 0) throw Bad(text, "it is empty");
        if (!trimmed.Contains('@')) return new CronSchedule(text, [ParseFields(text, trimmed)]);
        var entries = new List<Entry>();
        foreach (var item in trimmed.Split(','))
        {
            string alias = item.Trim();
            if (!Aliases.TryGetValue(alias, out var fields))
                throw Bad(text, $"'{DisplayText.Escape(alias)}' is not one of the aliases {string.Join(", ", Aliases.Keys)}; a list holds aliases only");
            entries.Add(ParseFields(text, fields));
        }
        return new CronSchedule(text, entries);
    }

    /// <summary>Whether the schedule is due in the minute that holds this wall-clock time (seconds are ignored).</summary>
    public bool IsDue(DateTime wallClock) => _entries.Any(e => e.Matches(wallClock));

    private static Entry ParseFields(string text, string fields)
    {
        var parts = fields.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 5)
            throw Bad(text, $"it has {parts.Length} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week) or is an @alias");
        return new Entry(
            ParseField(text, "minute", parts[0], 0, 59, null),
            ParseField(text, "hour", parts[1], 0, 23, null),
            ParseField(text, "day-of-month", parts[2], 1, 31, null),
            ParseField(text, "month", parts[3], 1, 12, MonthNames),
            // 7 is Sunday too; folded onto 0 so a match needs one bit.
            FoldSunday(ParseField(text, "day-of-week", parts[4], 0, 7, DayNames)),
            DayOfMonthStar: parts[2].StartsWith('*'),
            DayOfWeekStar: parts[4].StartsWith('*'));
    }

    private static ulong FoldSunday(ulong days) => (days & (1UL << 7)) != 0 ? (days & ~(1UL << 7)) | 1 : days;

    /// <summary>One field as a bit per allowed value.</summary>
    private static ulong ParseField(string text, string field, string value, int min, int max, string[]? names)
    {
        ulong bits = 0;
        foreach (var item in value.Split(','))
        {
            if (item.Length == 0) throw BadField(text, field, value, "a list item is empty");
            string range = item;
            int step = 1;
            int slash = item.IndexOf('/');
            if (slash >= 0)
            {
                range = item[..slash];
                string stepText = item[(slash + 1)..];
                if (!int.TryParse(stepText, NumberStyles.None, CultureInfo.InvariantCulture, out step) || step < 1 || step > max)
                    throw BadField(text, field, value, $"step '{DisplayText.Escape(stepText)}' must be a whole number from 1 to {max}");
            }
            int low, high;
            if (range == "*")
            {
                (low, high) = (min, max);
            }
            else
            {
                int dash = range.IndexOf('-');
                low = Value(text, field, value, dash < 0 ? range : range[..dash], min, max, names);
                // "a/n" means from a to the end, stepping n (Vixie cron).
                high = dash >= 0 ? Value(text, field, value, range[(dash + 1)..], min, max, names) : slash >= 0 ? max : low;
                if (high < low) throw BadField(text, field, value, $"range {DisplayText.Escape(range)} runs backwards");
            }
            for (int v = low; v <= high; v += step) bits |= 1UL << v;
        }
        return bits;
    }

    private static int Value(string text, string field, string whole, string token, int min, int max, string[]? names)
    {
        if (int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out int n))
            return n >= min && n <= max ? n : throw BadField(text, field, whole, $"{n} is out of range {min}-{max}");
        if (names is not null)
        {
            int i = Array.FindIndex(names, x => string.Equals(x, token, StringComparison.OrdinalIgnoreCase));
            // Month names count from 1, day names from 0 (Sunday).
            if (i >= 0) return i + min;
        }
        string named = names is null ? "" : $" or one of {string.Join(",", names)}";
        throw BadField(text, field, whole, $"'{DisplayText.Escape(token)}' is not a number from {min} to {max}{named}");
    }

    private static EngineException Bad(string text, string why) =>
        EngineException.Invalid("InvalidCronSchedule", $"cron schedule '{DisplayText.Escape(text)}' is invalid: {why}");

    private static EngineException BadField(string text, string field, string value, string why) =>
        Bad(text, $"field {field} ('{DisplayText.Escape(value)}'): {why}");

    private sealed record Entry(ulong Minutes, ulong Hours, ulong DaysOfMonth, ulong Months, ulong DaysOfWeek, bool DayOfMonthStar, bool DayOfWeekStar)
    {
        public bool Matches(DateTime t)
        {
            if ((Minutes & (1UL << t.Minute)) == 0 || (Hours & (1UL << t.Hour)) == 0 || (Months & (1UL << t.Month)) == 0) return false;
            bool dom = (DaysOfMonth & (1UL << t.Day)) != 0;
            bool dow = (DaysOfWeek & (1UL << (int)t.DayOfWeek)) != 0;
            return DayOfMonthStar || DayOfWeekStar ? dom && dow : dom || dow;
        }
    }
}
