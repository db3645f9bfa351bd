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

    public OperationRecord Issue(string container, bool includeSnapshots, TimeSpan lifetime, bool live = false)
    {
        var source = new MigrationSource(container, includeSnapshots, live);
        var op = operations.Start($"{(live ? "Moving running" : "Sending")} container {container}", new() { ["containers"] = [$"/1.0/containers/{container}"] }, async op =>
        {
            await SingleUseSecret.WaitClaimedAsync(op, source.Claimed, lifetime, $"to send container {container}");
            op.Report("sending");
            // Cancelled while the target restores, the live move is undone here: the container resumes.
            using var cancel = op.Cancellation.Token.Register(() => source.Verdict.TrySetResult(new(false, "the move was cancelled on the source")));
            return await source.Sent.Task;
        }, withSecret: true);
        op.Attachment = source;
        return op;
    }

    /// <summary>The operation's source, once, for its live secret; the secret is used up by the call.</summary>
    public MigrationSource? Redeem(string operationId, string secret) => operations.All.FirstOrDefault(op =>
        op.Id == operationId && op.Attachment is MigrationSource s && SingleUseSecret.Matches(op, secret) && s.Claimed.TrySetResult())?.Attachment as MigrationSource;

    /// <summary>A live move's source, once, for the control secret its stream carried; the target's one word back.</summary>
    public MigrationSource? RedeemControl(string operationId, string secret) => operations.All.FirstOrDefault(op =>
        op.Id == operationId && op.Attachment is MigrationSource s && s.TakeControl(secret))?.Attachment as MigrationSource;
}

/// <summary>What one migration operation sends, and how its send ended (the operation's result).</summary>
public sealed class MigrationSource(string container, bool includeSnapshots, bool live)
{
    private string? _control;
    private int _controlUsed;

    public string Container { get; } = container;
    public bool IncludeSnapshots { get; } = includeSnapshots;

    /// <summary>A live move: the container runs, and is sent frozen with criu's images (ContainerSend).</summary>
    public bool Live { get; } = live;

    /// <summary>What the target of a live move said once it had tried to run the container.</summary>
    public TaskCompletionSource<Api.MigrationVerdict> Verdict { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The control secret of a live move, made when its stream starts and sent with it: the target's key to answer.</summary>
    public string OpenControl() => _control = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    internal bool TakeControl(string secret) =>
        _control is string known && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(known), Encoding.ASCII.GetBytes(secret))
        && Interlocked.Exchange(ref _controlUsed, 1) == 0;
    internal TaskCompletionSource Claimed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public TaskCompletionSource<object?> Sent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
