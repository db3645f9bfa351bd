using System.Text;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Runtime;
using SystemContainers.Engine.Spec;
using SystemContainers.Engine.State;

namespace SystemContainers.Engine.Containers;

/// <summary>
/// Renames a stopped container, as LXD's POST /1.0/containers/NAME: the new name claimed, then
/// its volume (with its snapshots), record, state directory, run directory and NICs' host entries
/// moved to it, each step undone if a later one fails. The MACs and addresses stay. A file
/// "renaming" in the state directory, written first and removed last, holds the new name: a
/// daemon killed midway finds it at start and finishes the rename (each step is a rename done
/// only while its source is still there), so no step leaves a volume no container owns.
/// </summary>
internal sealed class RenameContainer(EngineParts parts)
{
    private const string IntentFile = "renaming";

    public void Run(Container c, string newName)
    {
        ContainerName.Validate(newName);
        string name = c.Name;
        if (c.Live is not null) throw EngineException.Conflict("ContainerRunning", $"container '{name}' is running; stop it first");
        if (newName == name) return;
        // The saved processes' cgroups are named for the container; criu would put them back under the old name.
        if (CheckpointContainer.HasState(parts, name))
            throw EngineException.Conflict("HasSavedState",
                $"container '{name}' has a saved state (Stop-SystemContainer -Stateful); start it, or discard the state with Start-SystemContainer -Stateless, before renaming it");
        var registry = parts.Registry;
        lock (registry.ClaimLock)
            if (!registry.TryClaim(newName, c)) throw EngineException.Conflict("ContainerExists", $"container '{newName}' already exists");
        using var revert = new Reverter();
        revert.Add($"the claim of name '{newName}'", () => registry.Release(newName, c));
        var record = c.Record;
        var renamed = record with { Name = newName };
        string dir = parts.Store.DirectoryOf(name), newDir = parts.Store.DirectoryOf(newName);
        string intent = Path.Combine(dir, IntentFile);
        revert.Add(intent, () => File.Delete(intent));
        Sys.WriteFileAtomic(intent, Encoding.UTF8.GetBytes(newName));
        revert.Add($"the volume of '{newName}'", () => parts.Storage.RenameVolume(renamed, name));
        parts.Storage.RenameVolume(record, newName);
        TestHooks.Reach("rename-volume-moved");
        revert.Add($"the record in {dir}", () => parts.Store.WriteConfig(dir, record));
        parts.Store.WriteConfig(dir, renamed);
        revert.Add($"state directory {newDir}", () => Directory.Move(newDir, dir));
        Directory.Move(dir, newDir);
        TestHooks.Reach("rename-moved");
        MoveRunDir(name, newName, revert);
        revert.Add($"the NICs of '{newName}'", () => parts.Networks.Rename(newName, name));
        parts.Networks.Rename(name, newName);
        File.Delete(Path.Combine(newDir, IntentFile));
        c.Replace(renamed, c.Spec);
        registry.Release(name, c);
        revert.Success();
    }

    /// <summary>
    /// Daemon start, before the container is loaded: a rename the daemon died in is finished.
    /// Returns the name the container has now; one that cannot be finished stays as it is, its
    /// new name returned in pending so its volume is not taken for an orphan.
    /// </summary>
    public string Resume(string name, ICollection<string> pending)
    {
        string dir = parts.Store.DirectoryOf(name);
        string intent = Path.Combine(dir, IntentFile);
        if (!File.Exists(intent)) return name;
        string newName = File.ReadAllText(intent).Trim();
        // Killed after the state directory moved: only the intent is left to remove.
        if (newName == name)
        {
            File.Delete(intent);
            return name;
        }
        try
        {
            ContainerName.Validate(newName);
            string newDir = parts.Store.DirectoryOf(newName);
            if (Directory.Exists(newDir))
                throw EngineException.Conflict("ContainerExists", $"state directory {newDir} already exists");
            var renamed = parts.Store.ReadConfig(name, newName) with { Name = newName };
            parts.Storage.RenameVolume(renamed with { Name = name }, newName);
            parts.Store.WriteConfig(dir, renamed);
            Directory.Move(dir, newDir);
            File.Delete(Path.Combine(newDir, IntentFile));
            EngineLog.Write($"finished renaming container '{name}' to '{newName}'");
            return newName;
        }
        catch (Exception e) when (e is EngineException or NativeException or IOException)
        {
            pending.Add(newName);
            EngineLog.Write($"cannot finish renaming container '{name}' to '{Spec.DisplayText.Escape(newName)}' ({intent}): {e.Message}");
            return name;
        }
    }

    /// <summary>A stopped container's run directory holds its last run's record and console log, which stay with it.</summary>
    private void MoveRunDir(string name, string newName, Reverter revert)
    {
        string run = parts.RunDirOf(name), newRun = parts.RunDirOf(newName);
        if (!Directory.Exists(run)) return;
        if (Directory.Exists(newRun)) TreeRemover.Remove(newRun);
        revert.Add($"run directory {newRun}", () => Directory.Move(newRun, run));
        Directory.Move(run, newRun);
    }
}
