namespace SystemContainers.Engine.Runtime;

/// <summary>
/// An undo list for a verb that makes several things: each step that made something adds how to
/// unmake it. Disposed without Success, it undoes them newest first; an undo that fails is logged
/// and the older ones still run, so one stuck resource never leaks the rest.
/// </summary>
public sealed class Reverter : IDisposable
{
    private readonly List<(string What, Action Undo)> _steps = [];

    public void Add(string what, Action undo) => _steps.Add((what, undo));

    /// <summary>The verb went through: what it made is kept.</summary>
    public void Success() => _steps.Clear();

    public void Dispose()
    {
        for (int i = _steps.Count - 1; i >= 0; i--)
        {
            try { _steps[i].Undo(); }
            catch (Exception e) { EngineLog.Write($"cannot undo {_steps[i].What}: {e.Message}"); }
        }
        _steps.Clear();
    }
}
