using System.Globalization;

namespace SystemContainers.Engine.Spec;

/// <summary>
/// How long a scheduled snapshot is kept (snapshots.expiry, LXD's form): space-separated
/// amounts each with a unit, M minutes, H hours, d days, w weeks, m months, y years, such as
/// "1M 2H 3d 4w 5m 6y". Calendar units are added as the calendar has them: a month after
/// 31 January is the last day of February.
/// </summary>
public sealed class SnapshotExpiry
{
    /// <summary>The largest amount of one unit: enough for any retention, and no sum of terms overflows.</summary>
    public const int MaxAmount = 100_000;

    private readonly int _minutes, _hours, _days, _weeks, _months, _years;

    private SnapshotExpiry(string text, int minutes, int hours, int days, int weeks, int months, int years)
    {
        Text = text;
        (_minutes, _hours, _days, _weeks, _months, _years) = (minutes, hours, days, weeks, months, years);
    }

    public string Text { get; }

    /// <summary>Parses an expiry; a bad term is an InvalidArgument error naming it.</summary>
    public static SnapshotExpiry Parse(string text)
    {
        var terms = text.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (terms.Length == 0) throw Bad(text, "it is empty");
        int minutes = 0, hours = 0, days = 0, weeks = 0, months = 0, years = 0;
        foreach (var term in terms)
        {
            char unit = term[^1];
            string amountText = term[..^1];
            if (!int.TryParse(amountText, NumberStyles.None, CultureInfo.InvariantCulture, out int amount) || amount > MaxAmount)
                throw Bad(text, $"term '{DisplayText.Escape(term)}' needs a whole number from 0 to {MaxAmount} before its unit");
            switch (unit)
            {
                case 'M': minutes += amount; break;
                case 'H': hours += amount; break;
                case 'd': days += amount; break;
                case 'w': weeks += amount; break;
                case 'm': months += amount; break;
                case 'y': years += amount; break;
                default:
                    throw Bad(text, $"term '{DisplayText.Escape(term)}' has unit '{DisplayText.Escape(unit.ToString())}'; use M (minutes), H (hours), d (days), w (weeks), m (months) or y (years)");
            }
            if (Math.Max(Math.Max(minutes, hours), Math.Max(Math.Max(days, weeks), Math.Max(months, years))) > MaxAmount)
                throw Bad(text, $"the terms of one unit add up to more than {MaxAmount}");
        }
        return new SnapshotExpiry(text, minutes, hours, days, weeks, months, years);
    }

    /// <summary>When a snapshot made at created expires; past the calendar's end is an error (a snapshot is never made to expire at once by accident).</summary>
    public DateTimeOffset After(DateTimeOffset created)
    {
        try
        {
            return created.AddYears(_years).AddMonths(_months).AddDays(7.0 * _weeks + _days).AddHours(_hours).AddMinutes(_minutes);
        }
        catch (ArgumentOutOfRangeException)
        {
            throw Bad(Text, $"it runs past the year 9999 from {created:u}");
        }
    }

    private static EngineException Bad(string text, string why) =>
        EngineException.Invalid("InvalidSnapshotExpiry", $"snapshot expiry '{DisplayText.Escape(text)}' is invalid: {why}");
}
