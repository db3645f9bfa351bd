using System.Management.Automation;
using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// What -AsJob returns: the daemon calls run off the pipeline thread, and Get-Job, Wait-Job,
/// Receive-Job and Stop-Job work on it as on any job. Each target's result or error is the
/// job's output or error, as the cmdlet would have written them.
/// </summary>
public sealed class SystemContainerJob : Job
{
    private readonly CancellationTokenSource _stop = new();
    private readonly string _location;

    public SystemContainerJob(string command, string name, string location) : base(command, name)
    {
        PSJobTypeName = nameof(SystemContainerJob);
        _location = location;
    }

    public override string Location => _location;
    public override string StatusMessage => JobStateInfo.State.ToString();
    public override bool HasMoreData => Output.Count > 0 || Error.Count > 0 || Verbose.Count > 0;

    /// <summary>Runs each target's call in turn; the job fails if any failed.</summary>
    internal void Start<T>(IReadOnlyList<ContainerTarget> targets, Func<ContainerTarget, CancellationToken, Task<(T? Result, string? Verbose)>> call)
    {
        SetJobState(JobState.Running);
        _ = Task.Run(async () =>
        {
            bool failed = false;
            foreach (var target in targets)
            {
                if (_stop.IsCancellationRequested) break;
                try
                {
                    var (result, verbose) = await call(target, _stop.Token);
                    if (verbose is not null) Verbose.Add(new VerboseRecord(verbose));
                    if (result is not null) Output.Add(PSObject.AsPSObject(result));
                }
                catch (SystemContainersApiException e)
                {
                    failed = true;
                    Error.Add(SystemContainerCmdlet.ToErrorRecord(e, target.Name));
                }
                catch (OperationCanceledException) when (_stop.IsCancellationRequested)
                {
                    break;
                }
            }
            SetJobState(_stop.IsCancellationRequested ? JobState.Stopped : failed ? JobState.Failed : JobState.Completed);
        });
    }

    /// <summary>Stops before the next target; the daemon finishes the one in hand (a start or stop is not torn half-way).</summary>
    public override void StopJob()
    {
        _stop.Cancel();
        if (!IsFinishedState(JobStateInfo.State)) SetJobState(JobState.Stopping);
    }

    private static bool IsFinishedState(JobState s) => s is JobState.Completed or JobState.Failed or JobState.Stopped;

    protected override void Dispose(bool disposing)
    {
        if (disposing) _stop.Dispose();
        base.Dispose(disposing);
    }
}
