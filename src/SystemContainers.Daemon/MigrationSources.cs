using System.Security.Cryptography;
using System.Text;

namespace SystemContainers.Daemon;

/// <summary>
/// The source side of a container's move or copy to another daemon (POST /1.0/containers/{name}
/// with migration: true, as LXD's): an operation with a single-use secret that runs until another
/// daemon has fetched the container's stream with it (GET /1.0/operations/{id}/stream?secret=),
/// and ends as that transfer did; unused, it expires or is cancelled. The trust gate redeems the
/// secret for an untrusted daemon, so only that one request of that one operation is let through.
/// </summary>
public sealed class MigrationSources(OperationRegistry operations)
{
    public static readonly TimeSpan DefaultLifetime = SingleUseSecret.DefaultLifetime;

    public OperationRecord Issue(string container, bool includeSnapshots, TimeSpan lifetime)
    {
        var source = new MigrationSource(container, includeSnapshots);
        var op = operations.Start($"Sending container {container}", new() { ["containers"] = [$"/1.0/containers/{container}"] }, async op =>
        {
            await SingleUseSecret.WaitClaimedAsync(op, source.Claimed, lifetime, $"to send container {container}");
            op.Report("sending");
            return await source.Sent.Task;
        }, withSecret: true);
        op.Attachment = source;
        return op;
    }

    /// <summary>The operation's source, once, for its live secret; the secret is used up by the call.</summary>
    public MigrationSource? Redeem(string operationId, string secret) => operations.All.FirstOrDefault(op =>
        op.Id == operationId && op.Attachment is MigrationSource s && SingleUseSecret.Matches(op, secret) && s.Claimed.TrySetResult())?.Attachment as MigrationSource;
}

/// <summary>What one migration operation sends, and how its send ended (the operation's result).</summary>
public sealed class MigrationSource(string container, bool includeSnapshots)
{
    public string Container { get; } = container;
    public bool IncludeSnapshots { get; } = includeSnapshots;
    internal TaskCompletionSource Claimed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public TaskCompletionSource<object?> Sent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
