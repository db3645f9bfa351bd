using System.Text.Json;
using System.Text.Json.Serialization;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.State;

/// <summary>
/// One directory per container under &lt;state&gt;/containers with config.json, replaced
/// atomically and durably (temp file, fsync, rename, fsync), and one under &lt;run&gt;/containers
/// with state.json, replaced atomically without fsync: what runs does not outlive a reboot, which
/// empties the run directory (a tmpfs), and a daemon that dies still finds the file whole. Every
/// record carries a schema version; a file that does not read as its record (empty, cut short,
/// wrong types, a newer schema) is reported as damaged, never repaired or deleted here.
/// </summary>
public sealed class StateStore
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        RespectNullableAnnotations = true,
    };

    public StateStore(string stateDir, string runDir)
    {
        ContainersDir = Path.Combine(stateDir, "containers");
        RunContainersDir = Path.Combine(runDir, "containers");
        Directory.CreateDirectory(ContainersDir);
        Directory.CreateDirectory(RunContainersDir);
    }

    public string ContainersDir { get; }

    /// <summary>The containers' run directories: state.json, the rootfs mount, the console log.</summary>
    public string RunContainersDir { get; }

    public string DirectoryOf(string name) => Path.Combine(ContainersDir, name);

    public string RunDirectoryOf(string name) => Path.Combine(RunContainersDir, name);

    /// <summary>Every container directory (staging directories start with a dot and belong to Recovery).</summary>
    public IEnumerable<string> Names() =>
        Directory.EnumerateDirectories(ContainersDir).Select(d => Path.GetFileName(d)).Where(n => !n.StartsWith('.'));

    /// <summary>The container's record; renamingTo is the other name it may carry while a rename is resumed.</summary>
    public ContainerRecord ReadConfig(string name, string? renamingTo = null)
    {
        string path = Path.Combine(DirectoryOf(name), "config.json");
        var record = Read<ContainerRecord>(path, ContainerRecord.CurrentSchema, r => r.SchemaVersion);
        if (string.IsNullOrEmpty(record.Name) || string.IsNullOrEmpty(record.ImageFingerprint) || record.Config is null || record.InitKind is null)
            throw Damaged(path, "a required field (name, imageFingerprint, config, initKind) is missing");
        if (record.Name != name && record.Name != renamingTo) throw Damaged(path, $"it names container '{record.Name}', not '{name}'");
        return record;
    }

    public RuntimeRecord ReadRuntime(string name)
    {
        string path = Path.Combine(RunDirectoryOf(name), "state.json");
        if (File.Exists(path)) return Read<RuntimeRecord>(path, RuntimeRecord.CurrentSchema, r => r.SchemaVersion);
        // Earlier daemons kept it in the state directory: moved, so the containers they ran are adopted.
        string old = Path.Combine(DirectoryOf(name), "state.json");
        if (!File.Exists(old)) return RuntimeRecord.NeverStarted;
        var record = Read<RuntimeRecord>(old, RuntimeRecord.CurrentSchema, r => r.SchemaVersion);
        WriteRuntime(name, record);
        File.Delete(old);
        return record;
    }

    /// <summary>
    /// A new container's config.json, in its staging directory: one fsync of the file, none of
    /// the directory, as the staging directory's rename to its name is what publishes the create
    /// (a journaling filesystem commits the file's entry no later than that rename).
    /// </summary>
    public void CreateConfig(string stagingDir, ContainerRecord record) =>
        Sys.WriteNewFile(Path.Combine(stagingDir, "config.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json));

    public void WriteConfig(string dir, ContainerRecord record) =>
        Sys.WriteFileAtomic(Path.Combine(dir, "config.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json));

    public void WriteRuntime(string name, RuntimeRecord record)
    {
        string dir = Directory.CreateDirectory(RunDirectoryOf(name)).FullName;
        Sys.WriteFileAtomic(Path.Combine(dir, "state.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json), durable: false);
    }

    /// <summary>Reads one record file; any way it can be damaged becomes a "DamagedState" error naming the file.</summary>
    internal static T Read<T>(string path, int schema, Func<T, int> versionOf, JsonSerializerOptions? options = null) where T : class
    {
        T? record;
        try
        {
            record = JsonSerializer.Deserialize<T>(File.ReadAllBytes(path), options ?? Json);
        }
        catch (JsonException e)
        {
            throw Damaged(path, e.Message);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Damaged(path, e.Message);
        }
        if (record is null) throw Damaged(path, "the document is null");
        int version = versionOf(record);
        if (version < 1 || version > schema) throw Damaged(path, $"schema version {version} is not one this daemon reads (1 to {schema})");
        return record;
    }

    private static EngineException Damaged(string path, string why) =>
        new(FailureKind.Conflict, "DamagedState", $"cannot read {path}: {why}");
}
