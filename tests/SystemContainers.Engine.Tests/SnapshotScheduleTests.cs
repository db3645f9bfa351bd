using SystemContainers.Engine.Containers;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Tests;

public class CronScheduleTests
{
    private static DateTime At(int year, int month, int day, int hour, int minute) => new(year, month, day, hour, minute, 0);

    /// <summary>Every minute of the days given at which the schedule is due.</summary>
    private static List<DateTime> DueMinutes(string schedule, DateTime from, TimeSpan span)
    {
        var cron = CronSchedule.Parse(schedule);
        var due = new List<DateTime>();
        for (var t = from; t < from + span; t = t.AddMinutes(1))
            if (cron.IsDue(t)) due.Add(t);
        return due;
    }

    [Fact]
    public void EveryMinuteIsDueEveryMinute()
    {
        Assert.Equal(24 * 60, DueMinutes("* * * * *", At(2026, 3, 1, 0, 0), TimeSpan.FromDays(1)).Count);
    }

    [Fact]
    public void IgnoresSecondsWithinTheMinute()
    {
        var cron = CronSchedule.Parse("30 4 * * *");
        Assert.True(cron.IsDue(new DateTime(2026, 1, 1, 4, 30, 59)));
        Assert.False(cron.IsDue(new DateTime(2026, 1, 1, 4, 31, 0)));
    }

    [Fact]
    public void ValuesListsRangesAndSteps()
    {
        var day = At(2026, 3, 2, 0, 0);
        Assert.Equal([At(2026, 3, 2, 6, 15)], DueMinutes("15 6 * * *", day, TimeSpan.FromDays(1)));
        Assert.Equal([0, 20, 40], DueMinutes("0,20,40 3 * * *", day, TimeSpan.FromDays(1)).Select(t => t.Minute));
        Assert.Equal([9, 10, 11, 12], DueMinutes("0 9-12 * * *", day, TimeSpan.FromDays(1)).Select(t => t.Hour));
        Assert.Equal([0, 15, 30, 45], DueMinutes("*/15 5 * * *", day, TimeSpan.FromDays(1)).Select(t => t.Minute));
        Assert.Equal([10, 13, 16, 19], DueMinutes("0 10-20/3 * * *", day, TimeSpan.FromDays(1)).Select(t => t.Hour));
        // "a/n": from a to the end of the range.
        Assert.Equal([50, 55], DueMinutes("50/5 1 * * *", day, TimeSpan.FromDays(1)).Select(t => t.Minute));
        Assert.Equal([1, 2, 3, 30, 40, 50], DueMinutes("1-3,30-59/10 2 * * *", day, TimeSpan.FromDays(1)).Select(t => t.Minute));
    }

    [Fact]
    public void MonthAndDayNamesInAnyCase()
    {
        var cron = CronSchedule.Parse("0 0 1 Jan,JUL *");
        Assert.True(cron.IsDue(At(2026, 1, 1, 0, 0)));
        Assert.True(cron.IsDue(At(2026, 7, 1, 0, 0)));
        Assert.False(cron.IsDue(At(2026, 2, 1, 0, 0)));
        var weekdays = CronSchedule.Parse("0 8 * * mon-fri");
        // 2026-03-02 is a Monday.
        Assert.Equal([2, 3, 4, 5, 6], DueMinutes("0 8 * * mon-fri", At(2026, 3, 1, 0, 0), TimeSpan.FromDays(7)).Select(t => t.Day));
        Assert.False(weekdays.IsDue(At(2026, 3, 7, 8, 0)));
        Assert.Equal(CronSchedule.Parse("0 0 1 3-5 *").IsDue(At(2026, 4, 1, 0, 0)), CronSchedule.Parse("0 0 1 mar-may *").IsDue(At(2026, 4, 1, 0, 0)));
    }

    [Fact]
    public void SundayIsZeroAndSeven()
    {
        // 2026-03-01 is a Sunday.
        Assert.True(CronSchedule.Parse("0 0 * * 0").IsDue(At(2026, 3, 1, 0, 0)));
        Assert.True(CronSchedule.Parse("0 0 * * 7").IsDue(At(2026, 3, 1, 0, 0)));
        Assert.True(CronSchedule.Parse("0 0 * * sun").IsDue(At(2026, 3, 1, 0, 0)));
        Assert.True(CronSchedule.Parse("0 0 * * 5-7").IsDue(At(2026, 3, 1, 0, 0)));
        Assert.False(CronSchedule.Parse("0 0 * * 7").IsDue(At(2026, 3, 2, 0, 0)));
    }

    [Fact]
    public void RestrictedDayOfMonthAndDayOfWeekMatchEither()
    {
        // The 13th, or any Friday (Vixie cron); 2026-03-06 is a Friday, 2026-03-13 also.
        var cron = CronSchedule.Parse("0 0 13 * 5");
        Assert.Equal([6, 13, 20, 27], DueMinutes("0 0 13 * 5", At(2026, 3, 1, 0, 0), TimeSpan.FromDays(31)).Select(t => t.Day));
        Assert.True(cron.IsDue(At(2026, 2, 13, 0, 0)));
        // With one of them *, both must match.
        Assert.Equal([13], DueMinutes("0 0 13 * *", At(2026, 3, 1, 0, 0), TimeSpan.FromDays(31)).Select(t => t.Day));
        Assert.Equal([6, 13, 20, 27], DueMinutes("0 0 * * 5", At(2026, 3, 1, 0, 0), TimeSpan.FromDays(31)).Select(t => t.Day));
        Assert.Equal([13], DueMinutes("0 0 13 * */1", At(2026, 3, 1, 0, 0), TimeSpan.FromDays(31)).Select(t => t.Day));
    }

    [Theory]
    [InlineData("@hourly", "0 * * * *")]
    [InlineData("@daily", "0 0 * * *")]
    [InlineData("@midnight", "0 0 * * *")]
    [InlineData("@weekly", "0 0 * * 0")]
    [InlineData("@monthly", "0 0 1 * *")]
    [InlineData("@yearly", "0 0 1 1 *")]
    [InlineData("@annually", "0 0 1 1 *")]
    [InlineData("@DAILY", "0 0 * * *")]
    public void AliasesAreTheirCronForms(string alias, string cron)
    {
        var from = At(2025, 12, 1, 0, 0);
        Assert.Equal(DueMinutes(cron, from, TimeSpan.FromDays(62)), DueMinutes(alias, from, TimeSpan.FromDays(62)));
    }

    [Fact]
    public void AListOfAliasesIsDueWhenAnyIs()
    {
        var cron = CronSchedule.Parse("@weekly, @monthly");
        Assert.True(cron.IsDue(At(2026, 4, 1, 0, 0)));
        Assert.True(cron.IsDue(At(2026, 3, 1, 0, 0)));
        Assert.False(cron.IsDue(At(2026, 3, 2, 0, 0)));
        Assert.Equal("@weekly, @monthly", cron.Text);
    }

    [Fact]
    public void TheLastDayOfFebruaryAndLeapDays()
    {
        Assert.Single(DueMinutes("0 0 29 2 *", At(2028, 1, 1, 0, 0), TimeSpan.FromDays(366)));
        Assert.Empty(DueMinutes("0 0 29 2 *", At(2026, 1, 1, 0, 0), TimeSpan.FromDays(365)));
        Assert.Empty(DueMinutes("0 0 31 4 *", At(2026, 1, 1, 0, 0), TimeSpan.FromDays(365)));
    }

    [Theory]
    [InlineData("", "it is empty")]
    [InlineData("   ", "it is empty")]
    [InlineData("* * * *", "it has 4 fields")]
    [InlineData("* * * * * *", "it has 6 fields")]
    [InlineData("60 * * * *", "field minute ('60'): 60 is out of range 0-59")]
    [InlineData("* 24 * * *", "field hour ('24'): 24 is out of range 0-23")]
    [InlineData("* * 0 * *", "field day-of-month ('0'): 0 is out of range 1-31")]
    [InlineData("* * 32 * *", "field day-of-month ('32'): 32 is out of range 1-31")]
    [InlineData("* * * 13 *", "field month ('13'): 13 is out of range 1-12")]
    [InlineData("* * * * 8", "field day-of-week ('8'): 8 is out of range 0-7")]
    [InlineData("* * * foo *", "field month ('foo'): 'foo' is not a number from 1 to 12 or one of jan,feb")]
    [InlineData("* * * * funday", "field day-of-week ('funday'): 'funday' is not a number from 0 to 7 or one of sun,mon")]
    [InlineData("* * * mon *", "field month ('mon')")]
    [InlineData("* * * * jan", "field day-of-week ('jan')")]
    [InlineData("x * * * *", "field minute ('x'): 'x' is not a number from 0 to 59")]
    [InlineData("*/0 * * * *", "field minute ('*/0'): step '0' must be a whole number from 1 to 59")]
    [InlineData("*/x * * * *", "field minute ('*/x'): step 'x'")]
    [InlineData("1/ * * * *", "field minute ('1/'): step ''")]
    [InlineData("5-1 * * * *", "field minute ('5-1'): range 5-1 runs backwards")]
    [InlineData("1,,2 * * * *", "field minute ('1,,2'): a list item is empty")]
    [InlineData("1, * * * *", "field minute ('1,'): a list item is empty")]
    [InlineData("-5 * * * *", "field minute ('-5'): '' is not a number")]
    [InlineData("* -1 * * *", "field hour ('-1')")]
    [InlineData("1-2-3 * * * *", "field minute ('1-2-3'): '2-3' is not a number")]
    [InlineData("@often", "'@often' is not one of the aliases")]
    [InlineData("@daily, 0 1 * * *", "'0 1 * * *' is not one of the aliases")]
    [InlineData("@daily,", "'' is not one of the aliases")]
    public void RefusesBadSchedulesNamingTheField(string schedule, string why)
    {
        var e = Assert.Throws<EngineException>(() => CronSchedule.Parse(schedule));
        Assert.Equal(FailureKind.InvalidArgument, e.Kind);
        Assert.Equal("InvalidCronSchedule", e.Reason);
        Assert.Contains(why, e.Message);
        Assert.StartsWith($"cron schedule '{schedule}' is invalid: ", e.Message);
    }
}

public class SnapshotExpiryTests
{
    private static readonly DateTimeOffset Created = new(2026, 1, 31, 10, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("2M", "2026-01-31T10:02:00Z")]
    [InlineData("3H", "2026-01-31T13:00:00Z")]
    [InlineData("1d", "2026-02-01T10:00:00Z")]
    [InlineData("2w", "2026-02-14T10:00:00Z")]
    [InlineData("1m", "2026-02-28T10:00:00Z")]
    [InlineData("1y", "2027-01-31T10:00:00Z")]
    [InlineData("0M", "2026-01-31T10:00:00Z")]
    [InlineData("1M 2H 3d 4w 5m 6y", "2032-07-31T12:01:00Z")]
    [InlineData("  30M   30M ", "2026-01-31T11:00:00Z")]
    public void AddsEachTerm(string expiry, string expected) =>
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), SnapshotExpiry.Parse(expiry).After(Created));

    [Theory]
    [InlineData("", "it is empty")]
    [InlineData("5", "term '5' needs a whole number")]
    [InlineData("d", "term 'd' needs a whole number")]
    [InlineData("5x", "term '5x' has unit 'x'")]
    [InlineData("5D", "term '5D' has unit 'D'")]
    [InlineData("1d2H", "term '1d2H' needs a whole number")]
    [InlineData("-1d", "term '-1d' needs a whole number")]
    [InlineData("1.5d", "term '1.5d' needs a whole number")]
    [InlineData("100001d", "term '100001d' needs a whole number from 0 to 100000")]
    [InlineData("60000y 60000y", "the terms of one unit add up to more than 100000")]
    public void RefusesBadExpiries(string expiry, string why)
    {
        var e = Assert.Throws<EngineException>(() => SnapshotExpiry.Parse(expiry));
        Assert.Equal("InvalidSnapshotExpiry", e.Reason);
        Assert.Contains(why, e.Message);
    }

    [Fact]
    public void AnExpiryPastTheCalendarIsAnError()
    {
        var e = Assert.Throws<EngineException>(() => SnapshotExpiry.Parse("9000y").After(Created));
        Assert.Contains("past the year 9999", e.Message);
    }
}

public class SnapshotPatternTests
{
    private static readonly DateTime When = new(2026, 12, 3, 9, 7, 5);

    [Fact]
    public void NumbersFollowTheHighestTaken()
    {
        Assert.Equal("snap0", SnapshotPattern.Default.NextName(When, []));
        Assert.Equal("snap0", SnapshotPattern.Default.NextName(When, ["other", "snapx", "snap-1", "xsnap4"]));
        Assert.Equal("snap4", SnapshotPattern.Default.NextName(When, ["snap0", "snap1", "snap3"]));
        Assert.Equal("snap11", SnapshotPattern.Default.NextName(When, ["snap10", "snap9"]));
    }

    [Fact]
    public void DateFormWithGoLayout()
    {
        var p = SnapshotPattern.Parse("auto-{{ creation_date|date:'2006-01-02_15-04-05' }}");
        Assert.Equal("auto-2026-12-03_09-07-05", p.NextName(When, []));
        Assert.Equal("d20261203", SnapshotPattern.Parse("d{{creation_date | date:\"20060102\"}}").NextName(When, []));
    }

    [Fact]
    public void DateAndNumberTogether()
    {
        var p = SnapshotPattern.Parse("{{ creation_date|date:'2006-01-02' }}-%d");
        Assert.Equal("2026-12-03-1", p.NextName(When, ["2026-12-03-0", "2026-12-02-7"]));
    }

    [Fact]
    public void ATakenNameWithoutNumberGetsASuffix()
    {
        var p = SnapshotPattern.Parse("daily");
        Assert.Equal("daily", p.NextName(When, []));
        Assert.Equal("daily-2", p.NextName(When, ["daily", "daily-1"]));
    }

    [Theory]
    [InlineData("snap:%d", "gives names such as 'snap:0'")]
    [InlineData("-%d", "gives names such as '-0'")]
    [InlineData("{{ creation_date }}", "only %d and")]
    [InlineData("{{ creation_date|date:'2006-01-02 15:04' }}", "gives names such as '2006-01-02 15:04'")]
    [InlineData("{% if x %}a{% endif %}", "only %d and")]
    [InlineData("", "gives names such as ''")]
    public void RefusesPatternsThatGiveBadNames(string pattern, string why)
    {
        var e = Assert.Throws<EngineException>(() => SnapshotPattern.Parse(pattern));
        Assert.Equal("InvalidSnapshotPattern", e.Reason);
        Assert.Contains(why, e.Message);
    }
}

public class SnapshotSettingsTests
{
    private static ContainerConfig Config(params (string Key, string Value)[] keys) =>
        ContainerConfig.Parse(keys.ToDictionary(k => k.Key, k => k.Value));

    [Fact]
    public void KeysAreKnownAndParsed()
    {
        var s = Config(("snapshots.schedule", "*/5 * * * *"), ("Snapshots.Schedule.Stopped", "true"), ("snapshots.pattern", "s%d"), ("snapshots.expiry", "2M")).Snapshots;
        Assert.Equal("*/5 * * * *", s.Schedule!.Text);
        Assert.True(s.ScheduleStopped);
        Assert.Equal("s%d", s.Pattern.Text);
        Assert.Equal("2M", s.Expiry!.Text);
        Assert.Equal(SnapshotSettings.None, ContainerConfig.Empty.Snapshots);
        Assert.Null(Config(("snapshots.schedule", "")).Snapshots.Schedule);
        Assert.Contains("snapshots.schedule", ContainerConfig.Keys);
    }

    [Theory]
    [InlineData("snapshots.schedule", "61 * * * *", "config key 'snapshots.schedule': cron schedule '61 * * * *' is invalid: field minute")]
    [InlineData("snapshots.schedule.stopped", "maybe", "config key 'snapshots.schedule.stopped' must be true or false")]
    [InlineData("snapshots.pattern", "a b", "config key 'snapshots.pattern': snapshot pattern 'a b' is invalid")]
    [InlineData("snapshots.expiry", "3q", "config key 'snapshots.expiry': snapshot expiry '3q' is invalid")]
    [InlineData("snapshots.expiry", "9000y", "config key 'snapshots.expiry': snapshot expiry '9000y' is invalid: it runs past the year 9999")]
    public void BadValuesNameTheirKey(string key, string value, string message)
    {
        var e = Assert.Throws<EngineException>(() => Config((key, value)));
        Assert.Equal("InvalidConfigValue", e.Reason);
        Assert.StartsWith(message, e.Message);
    }
}

public class SnapshotSchedulerTests
{
    private static ScheduleCandidate Candidate(string name, bool running, params (string Key, string Value)[] keys) =>
        new(name, SnapshotSettings.Parse(keys.ToDictionary(k => k.Key, k => k.Value)), running);

    [Fact]
    public void DueAtTIsBySchedulesRunningAndStoppedContainers()
    {
        var all = new[]
        {
            Candidate("every", true, ("snapshots.schedule", "* * * * *")),
            Candidate("hourly-running", true, ("snapshots.schedule", "@hourly")),
            Candidate("hourly-stopped", false, ("snapshots.schedule", "@hourly")),
            Candidate("hourly-stopped-too", false, ("snapshots.schedule", "@hourly"), ("snapshots.schedule.stopped", "true")),
            Candidate("none", true),
            Candidate("at-half", true, ("snapshots.schedule", "30 * * * *")),
        };
        Assert.Equal(["every", "hourly-running", "hourly-stopped-too"],
            SnapshotScheduler.Due(all, new DateTime(2026, 12, 3, 11, 0, 0)).Select(c => c.Name));
        Assert.Equal(["at-half", "every"], SnapshotScheduler.Due(all, new DateTime(2026, 12, 3, 11, 30, 20)).Select(c => c.Name));
        Assert.Equal(["every"], SnapshotScheduler.Due(all, new DateTime(2026, 12, 3, 11, 31, 0)).Select(c => c.Name));
    }

    [Fact]
    public void ExpiredAtTIsAtOrBeforeT()
    {
        var t = new DateTimeOffset(2026, 12, 3, 11, 0, 0, TimeSpan.Zero);
        var snapshots = new[]
        {
            new SnapshotInfo("past", t.AddDays(-1), t.AddSeconds(-1)),
            new SnapshotInfo("now", t.AddDays(-1), t),
            new SnapshotInfo("later", t.AddDays(-1), t.AddSeconds(1)),
            new SnapshotInfo("forever", t.AddDays(-1)),
        };
        Assert.Equal(["past", "now"], SnapshotScheduler.Expired(snapshots, t).Select(s => s.Name));
    }

    [Fact]
    public void WakesAtEachMinuteBoundaryOnce()
    {
        var t = new DateTimeOffset(2026, 12, 3, 11, 0, 0, TimeSpan.Zero);
        Assert.Equal(t.AddMinutes(1), SnapshotScheduler.NextMinute(t.AddSeconds(12.5), DateTimeOffset.MinValue));
        Assert.Equal(t.AddMinutes(1), SnapshotScheduler.NextMinute(t, DateTimeOffset.MinValue));
        // A timer that fired a little early does not run its minute again.
        Assert.Equal(t.AddMinutes(1), SnapshotScheduler.NextMinute(t.AddMilliseconds(-3), t));
        // A run that overran skips to the next boundary after now, not the minutes it missed.
        Assert.Equal(t.AddMinutes(4), SnapshotScheduler.NextMinute(t.AddMinutes(3).AddSeconds(2), t));
    }

    [Fact]
    public void TheScheduleIsReadInTheDaemonsTimeZone()
    {
        var zone = TimeZoneInfo.CreateCustomTimeZone("plus2", TimeSpan.FromHours(2), "plus2", "plus2");
        var minute = new DateTimeOffset(2026, 12, 3, 22, 0, 0, TimeSpan.Zero);
        var wall = TimeZoneInfo.ConvertTime(minute, zone).DateTime;
        var daily = new[] { Candidate("daily", true, ("snapshots.schedule", "@daily")) };
        Assert.Single(SnapshotScheduler.Due(daily, wall));
        Assert.Empty(SnapshotScheduler.Due(daily, minute.UtcDateTime));
    }
}

/// <summary>A clock the test moves: timers fire when Advance passes their time, on the caller's thread.</summary>
internal sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private readonly object _lock = new();
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_lock) return _now;
    }

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public int PendingTimers
    {
        get { lock (_lock) return _timers.Count(t => t.Due is not null); }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    public void Advance(TimeSpan by)
    {
        List<ManualTimer> due;
        lock (_lock)
        {
            _now += by;
            due = [.. _timers.Where(t => t.Due <= _now)];
            foreach (var t in due) t.Due = null;
        }
        foreach (var t in due) t.Fire();
    }

    private sealed class ManualTimer(ManualClock clock, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset? Due;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._lock)
            {
                Due = dueTime == Timeout.InfiniteTimeSpan ? null : clock._now + dueTime;
                if (!clock._timers.Contains(this)) clock._timers.Add(this);
            }
            return true;
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (clock._lock) clock._timers.Remove(this);
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>Containers as the scheduler sees them, with what it asked of them.</summary>
internal sealed class FakeSnapshotHost(ManualClock clock) : ISnapshotHost
{
    public readonly List<ScheduleCandidate> Candidates = [];
    public readonly Dictionary<string, List<SnapshotInfo>> Made = [];
    public readonly List<(string Name, string Snapshot)> Deleted = [];
    public readonly List<(string Action, string Name, IReadOnlyDictionary<string, string> Context)> Reports = [];
    public readonly HashSet<string> Failing = [];
    public TaskCompletionSource? Gate;
    private readonly Dictionary<string, int> _next = [];

    public IReadOnlyList<ScheduleCandidate> ScheduleCandidates()
    {
        lock (this) return [.. Candidates];
    }

    public IReadOnlyList<string> Names()
    {
        lock (this) return [.. Candidates.Select(c => c.Name)];
    }

    public IReadOnlyList<SnapshotInfo> Snapshots(string name)
    {
        lock (this) return Made.TryGetValue(name, out var all) ? [.. all] : [];
    }

    public async Task<SnapshotInfo> SnapshotAsync(string name, string? snapshot, CancellationToken ct, DateTimeOffset? expiresAt)
    {
        if (Gate is { } gate) await gate.Task;
        if (Failing.Contains(name)) throw EngineException.NotFound("SnapshotsUnsupported", $"the pool of '{name}' has no snapshots");
        lock (this)
        {
            var all = Made.TryGetValue(name, out var list) ? list : Made[name] = [];
            int n = _next.GetValueOrDefault(name);
            _next[name] = n + 1;
            var made = new SnapshotInfo(snapshot ?? $"snap{n}", clock.GetUtcNow(), expiresAt);
            all.Add(made);
            return made;
        }
    }

    public Task DeleteSnapshotAsync(string name, string snapshot, CancellationToken ct)
    {
        lock (this)
        {
            Made[name].RemoveAll(s => s.Name == snapshot);
            Deleted.Add((name, snapshot));
        }
        return Task.CompletedTask;
    }

    public void Report(string action, string name, IReadOnlyDictionary<string, string> context)
    {
        lock (this) Reports.Add((action, name, context));
    }

    public int Count(string name)
    {
        lock (this) return Made.TryGetValue(name, out var all) ? all.Count : 0;
    }
}

public class SnapshotSchedulerLoopTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 3, 11, 0, 30, TimeSpan.Zero);

    private static ScheduleCandidate Candidate(string name, bool running, params (string Key, string Value)[] keys) =>
        new(name, SnapshotSettings.Parse(keys.ToDictionary(k => k.Key, k => k.Value)), running);

    private static void WaitFor(Func<bool> condition, string what) =>
        Assert.True(SpinWait.SpinUntil(condition, TimeSpan.FromSeconds(10)), $"timed out waiting for {what}");

    [Fact]
    public void WakesAtEachMinuteBoundarySnapshotsTheDueAndSweepsTheExpired()
    {
        var clock = new ManualClock(Start);
        var host = new FakeSnapshotHost(clock);
        host.Candidates.Add(Candidate("every", true, ("snapshots.schedule", "* * * * *"), ("snapshots.expiry", "2M")));
        host.Candidates.Add(Candidate("even", true, ("snapshots.schedule", "*/2 * * * *")));
        host.Candidates.Add(Candidate("asleep", false, ("snapshots.schedule", "* * * * *")));
        using var scheduler = new SnapshotScheduler(host, clock, TimeZoneInfo.Utc);
        scheduler.Start();
        WaitFor(() => clock.PendingTimers == 1, "the wait for 11:01");
        // Nothing before the boundary.
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(0, host.Count("every"));
        clock.Advance(TimeSpan.FromSeconds(1));
        WaitFor(() => host.Count("every") == 1 && clock.PendingTimers == 1, "the 11:01 run");
        var first = host.Snapshots("every")[0];
        Assert.Equal(first.Created.AddMinutes(2), first.ExpiresAt);
        Assert.Equal(0, host.Count("even"));
        Assert.Equal(0, host.Count("asleep"));
        for (int minute = 2; minute <= 4; minute++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            int expected = minute;
            WaitFor(() => host.Count("even") == expected / 2 && clock.PendingTimers == 1 && host.Deleted.Count >= expected - 3, $"the 11:0{minute} run");
        }
        // snap0 (11:01, expiring 11:03) went at 11:03, snap1 at 11:04; each run made one for every.
        Assert.Equal([("every", "snap0"), ("every", "snap1")], host.Deleted);
        Assert.Equal(["snap2", "snap3"], host.Snapshots("every").Select(s => s.Name));
        Assert.Equal(0, host.Count("asleep"));
        Assert.Empty(host.Reports);
    }

    [Fact]
    public void AFailureIsReportedAndTheOthersStillGetTheirs()
    {
        var clock = new ManualClock(Start);
        var host = new FakeSnapshotHost(clock);
        host.Candidates.Add(Candidate("broken", true, ("snapshots.schedule", "* * * * *")));
        host.Candidates.Add(Candidate("fine", true, ("snapshots.schedule", "* * * * *")));
        host.Failing.Add("broken");
        using var scheduler = new SnapshotScheduler(host, clock, TimeZoneInfo.Utc);
        scheduler.Start();
        WaitFor(() => clock.PendingTimers == 1, "the wait for 11:01");
        clock.Advance(TimeSpan.FromSeconds(30));
        WaitFor(() => host.Count("fine") == 1 && clock.PendingTimers == 1, "the 11:01 run");
        var (action, name, context) = Assert.Single(host.Reports);
        Assert.Equal(SnapshotScheduler.FailedEvent, action);
        Assert.Equal("broken", name);
        Assert.Equal("snapshot", context["operation"]);
        Assert.Contains("has no snapshots", context["error"]);
    }

    [Fact]
    public async Task NeverTwoRunsAtOnce()
    {
        var clock = new ManualClock(Start);
        var host = new FakeSnapshotHost(clock) { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        host.Candidates.Add(Candidate("slow", true, ("snapshots.schedule", "* * * * *")));
        using var scheduler = new SnapshotScheduler(host, clock, TimeZoneInfo.Utc);
        var minute = new DateTimeOffset(2026, 12, 3, 11, 1, 0, TimeSpan.Zero);
        var first = scheduler.RunAsync(minute);
        Assert.False(await scheduler.RunAsync(minute.AddMinutes(1)));
        host.Gate.SetResult();
        Assert.True(await first);
        Assert.Equal(1, host.Count("slow"));
        Assert.True(await scheduler.RunAsync(minute.AddMinutes(2)));
        Assert.Equal(2, host.Count("slow"));
    }
}

public class SnapshotRecordsTests
{
    [Fact]
    public void KeepsEachSnapshotsTimesAndLeavesNoFileWhenEmpty()
    {
        using var dir = new TempDir();
        var file = dir.Combine("snapshots.json");
        Assert.Null(SnapshotRecords.Read(dir.Path).Of("snap0"));
        var created = new DateTimeOffset(2026, 12, 3, 11, 0, 0, TimeSpan.Zero);
        var records = SnapshotRecords.Read(dir.Path)
            .With("snap0", new SnapshotRecord(created, created.AddMinutes(2)))
            .With("kept", new SnapshotRecord(created, null));
        records.Write(dir.Path);
        var read = SnapshotRecords.Read(dir.Path);
        Assert.Equal(created.AddMinutes(2), read.Of("snap0")!.ExpiresAt);
        Assert.Null(read.Of("kept")!.ExpiresAt);
        Assert.Equal(created, read.Of("kept")!.Created);
        read.With("snap0", null).With("kept", null).Write(dir.Path);
        Assert.False(File.Exists(file));
        // An empty set written where there was no file (a refused snapshot put back) makes none.
        SnapshotRecords.Read(dir.Path).Write(dir.Path);
        Assert.False(File.Exists(file));
    }

    [Fact]
    public void ADamagedFileIsReportedNamingIt()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.Combine("snapshots.json"), "{\"snapshots\": 5");
        var e = Assert.Throws<EngineException>(() => SnapshotRecords.Read(dir.Path));
        Assert.Equal("DamagedState", e.Reason);
        Assert.Contains("snapshots.json", e.Message);
    }
}
