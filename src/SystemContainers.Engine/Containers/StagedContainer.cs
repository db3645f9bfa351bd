using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// A new container (create, copy, import) from its claim to its files in place. The name is
/// claimed under the registry's claim lock, the id map chosen there so no other claim takes it,
/// and the container's gate is held until the end, so nothing queued on it acts on it half-made.
/// Its volume is made in a staging directory (Dir) that Commit moves in place; disposed without
/// Commit, it undoes the NICs, the volume, the staging directory and the claim.
/// </summary>
internal sealed class StagedContainer : IDisposable
{
    private readonly EngineParts _parts;
    private readonly Reverter _revert = new();

    private StagedContainer(EngineParts parts, Container container)
    {
        _parts = parts;
        Container = container;
        Dir = Path.Combine(parts.Store.ContainersDir, $".new-{container.Name}-{Guid.NewGuid():N}");
    }

    public Container Container { get; }

    public string Dir { get; }

    /// <summary>Claims name for the record that record makes from the id map chosen for parsed (null: privileged).</summary>
    public static StagedContainer Claim(EngineParts parts, string name, ContainerConfig parsed, Func<IdMap?, ContainerRecord> record)
    {
        var registry = parts.Registry;
        Container container;
        lock (registry.ClaimLock)
        {
            if (registry.Contains(name)) throw Exists(name);
            var idmap = parsed.IsPrivileged ? null : IdMap.ForConfig(parsed, registry.IsolatedMaps());
            container = new Container(record(idmap), RuntimeRecord.NeverStarted, parsed);
            container.Gate.Wait();
            if (!registry.TryAdd(container)) throw Exists(name);
        }
        var staged = new StagedContainer(parts, container);
        try
        {
            staged._revert.Add($"the claim of name '{name}'", () => registry.Remove(container));
            staged._revert.Add($"staging directory {staged.Dir}", () => TreeRemover.Remove(staged.Dir));
            parts.Storage.CheckRootSize(container.Record, parsed.Limits.DiskBytes);
            Directory.CreateDirectory(staged.Dir);
            staged._revert.Add($"the volume of '{name}'", () => parts.Storage.DeleteVolume(container.Record, staged.Dir));
            return staged;
        }
        catch
        {
            staged.Dispose();
            throw;
        }
    }

    private bool _configWritten;

    /// <summary>The config, written ahead of Commit (a live move's import, while the source still runs the container): its fsync is then not in the frozen time.</summary>
    public void WriteConfig()
    {
        _parts.Store.CreateConfig(Dir, Container.Record);
        _configWritten = true;
    }

    /// <summary>
    /// Writes what a stateful systemd container needs into its root (CheckpointableSystemd),
    /// registers the NICs, limits the volume (limits.disk), writes the config (unless WriteConfig
    /// did) and moves the staging directory in place; the crash tests stop at hook.
    /// </summary>
    public Container Commit(string hook)
    {
        string name = Container.Name, run = _parts.RunDirOf(name);
        // Mounting the new root makes the name's run directory, which a failed attempt leaves to nobody.
        if (!Directory.Exists(run)) _revert.Add($"run directory {run}", () => TreeRemover.Remove(run));
        new CheckpointableSystemd(_parts).Ensure(Container, Dir);
        _revert.Add($"the NICs of '{name}'", () => _parts.Networks.Register(name, []));
        _parts.Networks.Register(name, Container.Spec.Nics);
        StepTrace.Mark("create: NICs registered");
        if (Container.Spec.Limits.DiskBytes is { } size) _parts.Storage.SetRootSize(Container.Record, Dir, size);
        if (!_configWritten) _parts.Store.CreateConfig(Dir, Container.Record);
        StepTrace.Mark("create: config written");
        TestHooks.Reach(hook);
        Directory.Move(Dir, _parts.Store.DirectoryOf(name));
        _revert.Success();
        return Container;
    }

    public void Dispose()
    {
        try
        {
            _revert.Dispose();
        }
        finally
        {
            Container.Gate.Release();
        }
    }

    private static EngineException Exists(string name) => EngineException.Conflict("ContainerExists", $"container '{name}' already exists");
}
