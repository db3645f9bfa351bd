using SystemContainers.Engine.Spec;
using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>A container as the scheduler sees it: its snapshots.* keys and whether it runs.</summary>
internal sealed record ScheduleCandidate(string Name, SnapshotSettings Settings, bool Running);

/// <summary>
/// Scheduled snapshots and their expiry: one loop for the daemon wakes at each minute boundary,
/// snapshots the containers whose snapshots.schedule is due in that minute (frozen briefly, as
/// Checkpoint does; stopped ones only with snapshots.schedule.stopped), each expiring after
/// snapshots.expiry, then deletes every snapshot whose expiry has passed. It keeps no state of
/// its own: the schedule is the containers' config, so a restarted daemon goes on as before.
/// Runs never overlap: a minute whose run would start while the last one still works is
/// skipped (cron does not catch up either). Failures go to the engine log and to the events
/// stream as container-snapshot-schedule-failed, and the other containers still get theirs.
/// </summary>
internal sealed class SnapshotScheduler : IDisposable
{
    public const string FailedEvent = "container-snapshot-schedule-failed";

    private readonly ISnapshotHost _containers;
    private readonly TimeProvider _clock;
    private readonly TimeZoneInfo _zone;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _running = new(1, 1);
    private Task? _loop;

    /// <summary>The schedule is read in zone's wall-clock time, as cron reads the host's.</summary>
    public SnapshotScheduler(ISnapshotHost containers, TimeProvider clock, TimeZoneInfo zone)
    {
        _containers = containers;
        _clock = clock;
        _zone = zone;
    }

    public void Start() => _loop = Task.Run(LoopAsync);

    private async Task LoopAsync()
    {
        var last = DateTimeOffset.MinValue;
        while (!_stop.IsCancellationRequested)
        {
            var minute = NextMinute(_clock.GetUtcNow(), last);
            var wait = minute - _clock.GetUtcNow();
            try
            {
                await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, _clock, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            last = minute;
            try
            {
                await RunAsync(minute);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The loop is the daemon's only one: a failure outside any one container's step must not end it.
                EngineLog.Write($"snapshot schedule: the run for {minute:u} failed: {e.Message}");
            }
        }
    }

    /// <summary>
    /// The minute boundary to wake at next: the one after now, and never one already run (a
    /// timer that fires a little early would otherwise run its minute twice).
    /// </summary>
    public static DateTimeOffset NextMinute(DateTimeOffset now, DateTimeOffset last)
    {
        var next = Floor(now).AddMinutes(1);
        return next > last ? next : last.AddMinutes(1);
    }

    private static DateTimeOffset Floor(DateTimeOffset t) => new(t.Ticks - t.Ticks % TimeSpan.TicksPerMinute, t.Offset);

    /// <summary>One run for the minute: the due snapshots, then the sweep. Returns false when a run was already going.</summary>
    public async Task<bool> RunAsync(DateTimeOffset minute)
    {
        if (!await _running.WaitAsync(0))
        {
            EngineLog.Write($"snapshot schedule: the run for {minute:u} is skipped; the one before it still works");
            return false;
        }
        try
        {
            foreach (var c in Due(_containers.ScheduleCandidates(), TimeZoneInfo.ConvertTime(minute, _zone).DateTime))
                await SnapshotAsync(c);
            await SweepAsync();
            return true;
        }
        finally
        {
            _running.Release();
        }
    }

    /// <summary>The containers whose scheduled snapshot is due in the minute holding wallClock, by name.</summary>
    public static IReadOnlyList<ScheduleCandidate> Due(IEnumerable<ScheduleCandidate> candidates, DateTime wallClock) =>
        [.. candidates.Where(c => c.Settings.IsDue(wallClock, c.Running)).OrderBy(c => c.Name, StringComparer.Ordinal)];

    /// <summary>The snapshots whose expiry is at or before now; ones without an expiry stay.</summary>
    public static IReadOnlyList<SnapshotInfo> Expired(IEnumerable<SnapshotInfo> snapshots, DateTimeOffset now) =>
        [.. snapshots.Where(s => s.ExpiresAt is DateTimeOffset at && at <= now)];

    private async Task SnapshotAsync(ScheduleCandidate c)
    {
        try
        {
            var expiresAt = c.Settings.Expiry?.After(_clock.GetUtcNow());
            var made = await _containers.SnapshotAsync(c.Name, null, _stop.Token, expiresAt);
            EngineLog.Write($"snapshot schedule: made snapshot '{made.Name}' of container '{c.Name}'{(expiresAt is null ? "" : $", expiring {expiresAt:u}")}");
        }
        catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
        {
            Fail(c.Name, "snapshot", null, $"cannot snapshot container '{c.Name}'", e);
        }
    }

    private async Task SweepAsync()
    {
        foreach (var name in _containers.Names())
        {
            IReadOnlyList<SnapshotInfo> expired;
            try
            {
                expired = Expired(_containers.Snapshots(name), _clock.GetUtcNow());
            }
            catch (EngineException e) when (e.Reason == "ContainerNotFound")
            {
                continue;
            }
            catch (Exception e)
            {
                Fail(name, "expire", null, $"cannot list the snapshots of container '{name}'", e);
                continue;
            }
            foreach (var s in expired)
            {
                try
                {
                    await _containers.DeleteSnapshotAsync(name, s.Name, _stop.Token);
                    EngineLog.Write($"snapshot schedule: deleted snapshot '{s.Name}' of container '{name}', which expired {s.ExpiresAt:u}");
                }
                catch (EngineException e) when (e.Reason is "ContainerNotFound" or "SnapshotNotFound")
                {
                }
                catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    Fail(name, "expire", s.Name, $"cannot delete expired snapshot '{s.Name}' of container '{name}'", e);
                }
            }
        }
    }

    private void Fail(string container, string operation, string? snapshot, string what, Exception e)
    {
        EngineLog.Write($"snapshot schedule: {what}: {e.Message}");
        var context = new Dictionary<string, string> { ["operation"] = operation, ["error"] = e.Message };
        if (snapshot is not null) context["snapshot"] = snapshot;
        _containers.Report(FailedEvent, container, context);
    }

    /// <summary>Stops the loop and waits for a run in progress, so no snapshot is cut short with its container frozen.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        if (_loop is not null && !_loop.Wait(TimeSpan.FromSeconds(30)))
        {
            // Left to the process's end rather than disposed under a run that still uses them.
            EngineLog.Write("snapshot schedule: a run still works after 30 s at shutdown");
            return;
        }
        _stop.Dispose();
        _running.Dispose();
    }
}
