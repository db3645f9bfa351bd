using System.Collections.Concurrent;
using System.Security.Cryptography;
using SystemContainers.Api;
using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>One piece of async work (LXD's operations): status, progress, result, and a waitable completion.</summary>
public sealed class OperationRecord
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public required string Id { get; init; }
    public required string Description { get; init; }
    public required Dictionary<string, string[]> Resources { get; init; }
    public DateTimeOffset CreatedAt { get; } = DateTimeOffset.UtcNow;
    public DateTimeOffset UpdatedAt { get; private set; } = DateTimeOffset.UtcNow;
    public string Status { get; private set; } = "Running";
    public int StatusCode { get; private set; } = 103;
    public string? Progress { get; private set; }
    public object? Result { get; private set; }
    public string? Err { get; private set; }
    public string? ErrId { get; private set; }
    public string? Secret { get; init; }
    public CancellationTokenSource Cancellation { get; } = new();
    public Task Done => _done.Task;

    /// <summary>Extra per-operation state, e.g. the exec session an interactive websocket attaches to.</summary>
    public object? Attachment { get; set; }

    public void Report(string progress)
    {
        Progress = progress;
        UpdatedAt = DateTimeOffset.UtcNow;
    }

    public void Succeed(object? result)
    {
        Result = result;
        Finish("Success", 200);
    }

    public void Fail(Exception e)
    {
        (int status, string id) = ErrorMapping.Classify(e);
        Err = e.Message;
        ErrId = id;
        Finish(e is OperationCanceledException ? "Cancelled" : "Failure", e is OperationCanceledException ? 401 : status);
    }

    private void Finish(string status, int code)
    {
        Status = status;
        StatusCode = code;
        UpdatedAt = DateTimeOffset.UtcNow;
        _done.TrySetResult();
    }

    public Operation ToApi()
    {
        var metadata = new Dictionary<string, object?>();
        if (Progress is not null) metadata["progress"] = Progress;
        if (Result is not null) metadata["result"] = Result;
        if (Secret is not null) metadata["secret"] = Secret;
        return new Operation
        {
            Id = Id, Description = Description, Status = Status, StatusCode = StatusCode, CreatedAt = CreatedAt,
            UpdatedAt = UpdatedAt, Resources = Resources, Err = Err, ErrId = ErrId,
            Metadata = System.Text.Json.JsonSerializer.SerializeToElement(metadata, Wire.Json),
        };
    }
}

/// <summary>The daemon's operations; finished ones are kept for a while so late waiters still get the result.</summary>
public sealed class OperationRegistry
{
    private static readonly TimeSpan Retention = TimeSpan.FromMinutes(5);
    private readonly ConcurrentDictionary<string, OperationRecord> _ops = new();

    /// <summary>
    /// Throttled operations (container starts and deletes: CPU and disk work, not waiting) that run
    /// at once; the rest wait their turn, so a fleet's worth of requests does not thrash the host.
    /// </summary>
    public static readonly int MaxThrottled = Math.Max(4, 2 * Environment.ProcessorCount);
    private readonly SemaphoreSlim _throttled = new(MaxThrottled, MaxThrottled);

    /// <summary>Runs work in a throttled turn, as each throttled operation does: a bulk request's starts and deletes share the bound.</summary>
    public async Task<T> InTurnAsync<T>(Func<Task<T>> work, CancellationToken ct)
    {
        await _throttled.WaitAsync(ct);
        try { return await work(); }
        finally { _throttled.Release(); }
    }

    public event Action<OperationRecord>? Changed;

    public OperationRecord Start(string description, Dictionary<string, string[]> resources,
        Func<OperationRecord, Task<object?>> work, bool withSecret = false, bool throttled = false, bool inline = false)
    {
        Prune();
        var op = new OperationRecord
        {
            Id = Guid.NewGuid().ToString(), Description = description, Resources = resources,
            Secret = withSecret ? Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)) : null,
        };
        _ops[op.Id] = op;
        Changed?.Invoke(op);
        async Task Run()
        {
            bool held = false;
            try
            {
                if (throttled) await _throttled.WaitAsync(op.Cancellation.Token);
                held = throttled;
                op.Succeed(await work(op));
            }
            catch (Exception e)
            {
                DaemonLog.Failure($"operation {op.Id} ({description})", e);
                op.Fail(e);
            }
            finally
            {
                if (held) _throttled.Release();
            }
            Changed?.Invoke(op);
        }
        // Inline, the work runs on the caller's thread up to its first wait: a request that waits
        // for its operation anyway saves the thread pool's hop, which costs most under load.
        _ = inline ? Run() : Task.Run(Run);
        return op;
    }

    public OperationRecord Get(string id) =>
        _ops.TryGetValue(id, out var op) ? op : throw EngineException.NotFound("OperationNotFound", $"operation '{id}' not found");

    public IEnumerable<OperationRecord> All => _ops.Values.OrderBy(o => o.CreatedAt);

    private void Prune()
    {
        var cutoff = DateTimeOffset.UtcNow - Retention;
        foreach (var op in _ops.Values)
            if (op.Done.IsCompleted && op.UpdatedAt < cutoff) _ops.TryRemove(op.Id, out _);
    }
}
