using SystemContainers.Engine.Storage;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// What the snapshot scheduler asks of the containers: ContainerService in the daemon, a fake in
/// the scheduler's unit tests, which drive its loop with a clock of their own.
/// </summary>
internal interface ISnapshotHost
{
    IReadOnlyList<ScheduleCandidate> ScheduleCandidates();

    IReadOnlyList<string> Names();

    IReadOnlyList<SnapshotInfo> Snapshots(string name);

    Task<SnapshotInfo> SnapshotAsync(string name, string? snapshot, CancellationToken ct, DateTimeOffset? expiresAt);

    Task DeleteSnapshotAsync(string name, string snapshot, CancellationToken ct);

    void Report(string action, string name, IReadOnlyDictionary<string, string> context);
}
