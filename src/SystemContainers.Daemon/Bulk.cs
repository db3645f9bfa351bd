using SystemContainers.Api;
using SystemContainers.Engine;

namespace SystemContainers.Daemon;

/// <summary>
/// A bulk request's calls: one per name, at most parallel at a time, each name answered with its
/// container or its error, so one failure stops none of the others (as LXD's bulk state change).
/// </summary>
internal static class Bulk
{
    /// <summary>Names in one request: a fleet, not an unbounded body.</summary>
    public const int MaxNames = 10000;

    /// <summary>The names of a bulk request, checked: at least one, none empty, none twice.</summary>
    public static List<string> Names(List<string>? names)
    {
        if (names is null || names.Count == 0) throw EngineException.Invalid("InvalidRequest", "request field 'names' must name at least one container");
        if (names.Count > MaxNames) throw EngineException.Invalid("InvalidRequest", $"request field 'names' names {names.Count} containers, more than {MaxNames}");
        if (names.FirstOrDefault(string.IsNullOrEmpty) is not null) throw EngineException.Invalid("InvalidRequest", "request field 'names' has an empty name");
        if (names.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw EngineException.Invalid("InvalidRequest", $"request field 'names' names '{twice.Key}' twice");
        return names;
    }

    /// <summary>Parallel as asked, from 1 to 1024 (default: the daemon's throttled bound).</summary>
    public static int Parallel(int? parallel) => parallel switch
    {
        null => OperationRegistry.MaxThrottled,
        < 1 or > 1024 => throw EngineException.Invalid("InvalidRequest", $"request field 'parallel' must be from 1 to 1024, not {parallel}"),
        int p => p,
    };

    public static async Task<List<ContainerBulkResult>> RunAsync(IReadOnlyList<string> names, int parallel,
        Func<string, CancellationToken, Task<SystemContainer?>> call, CancellationToken ct)
    {
        using var gate = new SemaphoreSlim(parallel);
        var results = await Task.WhenAll(names.Select(async name =>
        {
            await gate.WaitAsync(ct);
            try { return new ContainerBulkResult(name, await call(name, ct)); }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                var (status, id) = ErrorMapping.Classify(e);
                return new ContainerBulkResult(name, null, status, id, e.Message);
            }
            finally { gate.Release(); }
        }));
        return [.. results];
    }
}
