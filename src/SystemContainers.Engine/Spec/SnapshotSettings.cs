namespace SystemContainers.Engine.Spec;

/// <summary>
/// The snapshots.* keys (LXD's): when scheduled snapshots are made, of stopped containers too or
/// not, how snapshots made without a name are named, and how long scheduled ones are kept.
/// </summary>
public sealed record SnapshotSettings(CronSchedule? Schedule, bool ScheduleStopped, SnapshotPattern Pattern, SnapshotExpiry? Expiry)
{
    public const string ScheduleKey = "snapshots.schedule";
    public const string ScheduleStoppedKey = "snapshots.schedule.stopped";
    public const string PatternKey = "snapshots.pattern";
    public const string ExpiryKey = "snapshots.expiry";

    public static readonly IReadOnlyList<string> Keys = [ScheduleKey, ScheduleStoppedKey, PatternKey, ExpiryKey];

    public static SnapshotSettings None { get; } = new(null, false, SnapshotPattern.Default, null);

    /// <summary>The keys' values checked; a bad one is an InvalidConfigValue error naming its key. An empty value is the key unset.</summary>
    public static SnapshotSettings Parse(IReadOnlyDictionary<string, string> raw)
    {
        var schedule = Value(raw, ScheduleKey, CronSchedule.Parse);
        bool stopped = raw.TryGetValue(ScheduleStoppedKey, out var s) && ContainerConfig.ParseBool(ScheduleStoppedKey, s);
        var pattern = Value(raw, PatternKey, SnapshotPattern.Parse) ?? SnapshotPattern.Default;
        var expiry = Value(raw, ExpiryKey, SnapshotExpiry.Parse);
        // Checked once against now, so a value that runs past the calendar fails here and not at the first snapshot.
        if (expiry is not null) Named(ExpiryKey, () => expiry.After(DateTimeOffset.UtcNow));
        return new SnapshotSettings(schedule, stopped, pattern, expiry);
    }

    /// <summary>Whether a scheduled snapshot of this container is due in the minute holding wallClock.</summary>
    public bool IsDue(DateTime wallClock, bool running) => Schedule is not null && (running || ScheduleStopped) && Schedule.IsDue(wallClock);

    private static T? Value<T>(IReadOnlyDictionary<string, string> raw, string key, Func<string, T> parse) where T : class =>
        raw.TryGetValue(key, out var text) && text.Length > 0 ? Named(key, () => parse(text)) : null;

    private static T Named<T>(string key, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (EngineException e) when (e.Kind == FailureKind.InvalidArgument)
        {
            throw EngineException.Invalid("InvalidConfigValue", $"config key '{key}': {e.Message}");
        }
    }
}
