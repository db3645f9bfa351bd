using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>What every cmdlet shares: the client, cancellation on Ctrl+C, and API errors as ErrorRecords.</summary>
public abstract class SystemContainerCmdlet : PSCmdlet
{
    private readonly CancellationTokenSource _stop = new();

    protected CancellationToken Cancel => _stop.Token;

    /// <summary>
    /// The remote to act on (Get-SystemContainerRemote; "local" is this host's daemon); the default
    /// remote when not given (Set-SystemContainerRemote -Default; local unless chosen). Objects
    /// from a remote carry its name in their Remote property, which binds here, so a pipeline acts
    /// on the host its objects came from.
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("ComputerName")]
    [ArgumentCompleter(typeof(RemoteNameCompleter))]
    public string? Remote { get; set; }

    protected SystemContainersClient Client => ClientFor(Remote);

    /// <summary>The client of a remote (null or empty: the default remote; "local": the local daemon).</summary>
    protected SystemContainersClient ClientFor(string? remote) =>
        RemoteStore.Resolve(remote) is string name ? RemoteStore.Client(name) : DaemonConnection.Get(Cancel);

    /// <summary>One client per remote the targets name (key "" for the local daemon): a pipeline may carry containers of several hosts.</summary>
    internal Dictionary<string, SystemContainersClient> ClientsFor(IEnumerable<ContainerTarget> targets) =>
        targets.Select(t => t.Remote ?? "").Distinct().ToDictionary(r => r, ClientFor);

    /// <summary>
    /// Where another daemon reaches this cmdlet's source (-Remote), to pull what from it: a
    /// remote's address as this user reaches it, or the local daemon's HTTPS address.
    /// </summary>
    protected async Task<(string Server, string Certificate)> SourceAddressAsync(SystemContainersClient source, string what)
    {
        if (RemoteStore.Resolve(Remote) is string name)
        {
            var remote = RemoteStore.List().First(r => r.Name == name);
            return ($"https://{remote.Address}", remote.ServerFingerprint);
        }
        var host = await source.GetHostAsync(Cancel);
        if (host.Addresses.Length == 0)
            throw new SystemContainersApiException(409, "HttpsOff",
                $"the local daemon does not listen on HTTPS, so no other daemon can fetch {what} from it; Set-SystemContainerHost -HttpsAddress first");
        return ($"https://{host.Addresses[0]}", host.ServerFingerprint);
    }

    /// <summary>
    /// Cancels the source's operation whose secret a refused pull never used, which would stay
    /// valid until it expires. Callers run it from a finally, so it runs also when the pull's error
    /// stops the pipeline (-ErrorAction Stop throws out of WriteError).
    /// </summary>
    protected static void WithdrawSecret(SystemContainersClient source, string operationId)
    {
        try { source.CancelOperationAsync(operationId, CancellationToken.None).GetAwaiter().GetResult(); }
        catch (SystemContainersApiException) { /* A source that is gone has no secret left to withdraw. */ }
    }

    /// <summary>A container named now, with the remote bound now: what a cmdlet acting once all input has arrived collects.</summary>
    internal ContainerTarget Here(string name) => new(Remote, name);

    protected override void StopProcessing() => _stop.Cancel();

    /// <summary>
    /// The confirmation of a removal (ConfirmImpact High: asked by default). -Force answers it, as
    /// Remove-VM -Force does, unless -WhatIf or -Confirm is given as well.
    /// </summary>
    protected bool ShouldRemove(string target, string action, bool force) =>
        (force && !MyInvocation.BoundParameters.ContainsKey("WhatIf") && !MyInvocation.BoundParameters.ContainsKey("Confirm"))
        || ShouldProcess(target, action);

    /// <summary>
    /// Runs call for every target on its own remote's daemon, at most throttle at once (the daemon
    /// bounds its own share too), with progress while more than one runs. Results and errors are
    /// written in the order of the targets, on the pipeline thread; API failures are non-terminating
    /// errors about their name.
    /// </summary>
    internal void CallEach<T>(IReadOnlyList<ContainerTarget> names, int throttle, string activity,
        Func<SystemContainersClient, string, CancellationToken, Task<T>> call, Action<string, T> done)
    {
        if (names.Count == 0) return;
        var clients = ClientsFor(names);
        using var gate = new SemaphoreSlim(throttle);
        int finished = 0;
        var calls = names.Select(async target =>
        {
            await gate.WaitAsync(Cancel);
            try { return await call(clients[target.Remote ?? ""], target.Name, Cancel); }
            finally
            {
                gate.Release();
                Interlocked.Increment(ref finished);
            }
        }).ToList();
        Report(names, calls, () => Volatile.Read(ref finished), activity, done);
    }

    /// <summary>Names per bulk request: progress moves a batch at a time, and a batch waits for its slowest change.</summary>
    internal const int BulkBatch = 100;

    /// <summary>
    /// Sends the targets to their daemons in bulk requests of at most batch names (a remote's batches
    /// one after another, remotes at once), the daemon changing parallel at a time; each name's
    /// answer goes through each (which throws for an error it does not settle) and is written as
    /// CallEach writes, in the order of the targets, with progress per batch.
    /// </summary>
    internal void CallBulk<T>(IReadOnlyList<ContainerTarget> targets, int batch, string activity,
        Func<SystemContainersClient, List<string>, CancellationToken, Task<List<ContainerBulkResult>>> send,
        Func<SystemContainersClient, ContainerBulkResult, CancellationToken, Task<T>> each, Action<string, T> done)
    {
        if (targets.Count == 0) return;
        var clients = ClientsFor(targets);
        var outcomes = new TaskCompletionSource<T>[targets.Count];
        for (int i = 0; i < outcomes.Length; i++) outcomes[i] = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        int finished = 0;
        _ = Enumerable.Range(0, targets.Count).GroupBy(i => targets[i].Remote ?? "").Select(async remote =>
        {
            var client = clients[remote.Key];
            foreach (var chunk in remote.Chunk(batch))
            {
                try
                {
                    var answers = await send(client, [.. chunk.Select(i => targets[i].Name)], Cancel);
                    if (answers.Count != chunk.Length || chunk.Where((i, k) => answers[k].Name != targets[i].Name).Any())
                        throw new SystemContainersApiException(500, "BulkAnswerMismatch", $"the daemon at {client.Target} answered a bulk request for {chunk.Length} containers with {answers.Count} other answers");
                    await Task.WhenAll(chunk.Select(async (i, k) =>
                    {
                        try { outcomes[i].SetResult(await each(client, answers[k], Cancel)); }
                        catch (Exception e) { outcomes[i].SetException(e); }
                    }));
                }
                catch (Exception e)
                {
                    foreach (int i in chunk) outcomes[i].TrySetException(e);
                }
                Interlocked.Add(ref finished, chunk.Length);
            }
        }).ToList();
        Report(targets, outcomes.Select(o => o.Task).ToList(), () => Volatile.Read(ref finished), activity, done);
    }

    /// <summary>The failure in a bulk answer, as the exception the single request would have thrown.</summary>
    internal static SystemContainersApiException Failure(ContainerBulkResult r) =>
        new(r.ErrorCode ?? 500, r.ErrorId ?? "OperationFailed", r.Error ?? $"{r.Name}: failed");

    /// <summary>Waits for the calls with progress, then writes their results and errors in the order of the names.</summary>
    private void Report<T>(IReadOnlyList<ContainerTarget> names, List<Task<T>> calls, Func<int> finished, string activity, Action<string, T> done)
    {
        var all = Task.WhenAll(calls);
        var progress = new ProgressRecord(1, activity, $"0 of {names.Count}");
        while (!((IAsyncResult)all).AsyncWaitHandle.WaitOne(250))
        {
            if (Cancel.IsCancellationRequested) throw new PipelineStoppedException();
            if (names.Count == 1) continue;
            int n = finished();
            progress.StatusDescription = $"{n} of {names.Count}";
            progress.PercentComplete = n * 100 / names.Count;
            WriteProgress(progress);
        }
        if (names.Count > 1)
        {
            progress.RecordType = ProgressRecordType.Completed;
            WriteProgress(progress);
        }
        for (int i = 0; i < names.Count; i++)
        {
            var task = calls[i];
            if (task.IsCompletedSuccessfully) done(names[i].Name, task.Result);
            else if (task.Exception?.InnerException is SystemContainersApiException e)
            {
                if (e.StatusCode == 503) DaemonConnection.Forget();
                WriteError(ToErrorRecord(e, names[i].Name));
            }
            else if (task.IsCanceled || Cancel.IsCancellationRequested) throw new PipelineStoppedException();
            else task.GetAwaiter().GetResult();
        }
    }

    /// <summary>
    /// Before a copy, move or export that carries the snapshots of container name (of -Remote),
    /// warns of each stateful one: its processes are not carried (their criu images name this
    /// container's ids and NICs), so what arrives (carried) holds its files, restored without
    /// -Stateful. A look-up that fails warns of nothing: the call that follows reports the failure.
    /// </summary>
    protected void WarnOfStatefulSnapshots(string name, string carried)
    {
        List<SystemContainerSnapshot> snapshots;
        try { snapshots = Client.ListSnapshotsAsync(name, Cancel).GetAwaiter().GetResult(); }
        catch (SystemContainersApiException) { return; }
        foreach (var s in snapshots.Where(s => s.Stateful))
            WriteWarning($"snapshot '{s.SnapshotName}' of container '{name}' holds running processes (-Stateful), which are not carried: " +
                $"{carried} holds its files only, to restore without -Stateful");
    }

    /// <summary>Runs an API call synchronously; API failures become non-terminating errors about target.</summary>
    protected bool TryCall<T>(Func<SystemContainersClient, Task<T>> call, object? target, out T result)
    {
        try
        {
            result = call(Client).GetAwaiter().GetResult();
            return true;
        }
        catch (SystemContainersApiException e)
        {
            if (e.StatusCode == 503) DaemonConnection.Forget();
            WriteError(ToErrorRecord(e, target));
            result = default!;
            return false;
        }
        catch (OperationCanceledException) when (Cancel.IsCancellationRequested)
        {
            throw new PipelineStoppedException();
        }
    }

    /// <summary>
    /// Runs a call that reports progress (an operation's), as Write-Progress under activity while it
    /// runs; API failures become non-terminating errors about target.
    /// </summary>
    protected bool TryCallWithProgress<T>(Func<Action<string>, Task<T>> call, string activity, object target, out T result)
    {
        var record = new ProgressRecord(1, activity, "starting");
        // Progress arrives on pool threads; only the pipeline thread may write it.
        using var updates = new System.Collections.Concurrent.BlockingCollection<string>();
        Task<T> work;
        try
        {
            work = call(status => updates.Add(status.Length == 0 ? "working" : status));
        }
        catch (SystemContainersApiException e)
        {
            WriteError(ToErrorRecord(e, target));
            result = default!;
            return false;
        }
        work.ContinueWith(_ => updates.CompleteAdding(), TaskScheduler.Default);
        foreach (var status in updates.GetConsumingEnumerable())
        {
            record.StatusDescription = status;
            WriteProgress(record);
        }
        record.RecordType = ProgressRecordType.Completed;
        WriteProgress(record);
        return TryCall(_ => work, target, out result);
    }

    protected bool TryCall(Func<SystemContainersClient, Task> call, object? target) =>
        TryCall(async c =>
        {
            await call(c);
            return true;
        }, target, out _);

    internal static ErrorRecord ToErrorRecord(SystemContainersApiException e, object? target) =>
        new(e, e.ErrorId, e.StatusCode switch
        {
            400 => ErrorCategory.InvalidArgument,
            404 => ErrorCategory.ObjectNotFound,
            409 => e.ErrorId.EndsWith("Exists", StringComparison.Ordinal) || e.ErrorId == "AliasInUse"
                ? ErrorCategory.ResourceExists : ErrorCategory.InvalidOperation,
            503 => ErrorCategory.ConnectionError,
            _ => ErrorCategory.NotSpecified,
        }, target);

    /// <summary>
    /// Get-* filtering: every item without names, else the items each name (a wildcard pattern)
    /// matches; a literal name that matches nothing is a non-terminating notFoundId error.
    /// </summary>
    protected void WriteMatches<T>(IReadOnlyList<T> all, string[]? names, Func<T, WildcardPattern, string, bool> matches,
        string notFoundId, string kind)
    {
        if (names is null || names.Length == 0)
        {
            WriteObject(all, enumerateCollection: true);
            return;
        }
        foreach (var name in names)
        {
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            var found = all.Where(item => matches(item, pattern, name)).ToList();
            if (found.Count == 0 && !WildcardPattern.ContainsWildcardCharacters(name))
                WriteError(new ErrorRecord(new ItemNotFoundException($"{kind} '{name}' not found"), notFoundId, ErrorCategory.ObjectNotFound, name));
            WriteObject(found, enumerateCollection: true);
        }
    }

    /// <summary>Expands wildcard patterns against existing containers; literal names pass through (a missing one errors later).</summary>
    protected IEnumerable<string> ExpandContainerNames(IEnumerable<string> names) =>
        ExpandNames(names, c => c.ListContainersAsync(Cancel), c => [c.Name]);

    protected IEnumerable<string> ExpandNetworkNames(IEnumerable<string> names) =>
        ExpandNames(names, c => c.ListNetworksAsync(Cancel), n => [n.Name]);

    /// <summary>
    /// Expands wildcard patterns against a listing (each item may answer to several names, as an
    /// image to its aliases); literal names pass through, so a missing one gets the daemon's error.
    /// A pattern that matches nothing yields nothing, as Remove-Item's does.
    /// </summary>
    protected IEnumerable<string> ExpandNames<T>(IEnumerable<string> names, Func<SystemContainersClient, Task<List<T>>> list,
        Func<T, IEnumerable<string>> namesOf)
    {
        List<T>? all = null;
        foreach (var name in names)
        {
            if (!WildcardPattern.ContainsWildcardCharacters(name))
            {
                yield return name;
                continue;
            }
            if (all is null && !TryCall(list, name, out all)) yield break;
            var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
            foreach (var match in all!.SelectMany(namesOf).Where(pattern.IsMatch).Distinct(StringComparer.Ordinal)) yield return match;
        }
    }
}

/// <summary>A container name and the remote it is on (null: the local daemon).</summary>
internal readonly record struct ContainerTarget(string? Remote, string Name)
{
    public override string ToString() => Remote is null ? Name : $"{Remote}:{Name}";
}
