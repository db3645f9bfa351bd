using System.Text.Json;
using System.Text.Json.Serialization;
using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.State;

/// <summary>
/// One directory per container under &lt;state&gt;/containers: config.json and state.json, each
/// replaced atomically (temp file, fsync, rename) so a crash never leaves half a file.
/// </summary>
public sealed class StateStore
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public StateStore(string stateDir)
    {
        ContainersDir = Path.Combine(stateDir, "containers");
        Directory.CreateDirectory(ContainersDir);
    }

    public string ContainersDir { get; }

    public string DirectoryOf(string name) => Path.Combine(ContainersDir, name);

    public IEnumerable<string> Names() =>
        Directory.EnumerateDirectories(ContainersDir)
            .Select(d => Path.GetFileName(d))
            .Where(n => !n.StartsWith('.') && File.Exists(Path.Combine(ContainersDir, n, "config.json")));

    public ContainerRecord ReadConfig(string name) => Read<ContainerRecord>(Path.Combine(DirectoryOf(name), "config.json"));

    public RuntimeRecord ReadRuntime(string name)
    {
        string path = Path.Combine(DirectoryOf(name), "state.json");
        return File.Exists(path) ? Read<RuntimeRecord>(path) : RuntimeRecord.NeverStarted;
    }

    public void WriteConfig(string dir, ContainerRecord record) =>
        Sys.WriteFileAtomic(Path.Combine(dir, "config.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json));

    public void WriteRuntime(string name, RuntimeRecord record) =>
        Sys.WriteFileAtomic(Path.Combine(DirectoryOf(name), "state.json"), JsonSerializer.SerializeToUtf8Bytes(record, Json));

    private static T Read<T>(string path) =>
        JsonSerializer.Deserialize<T>(File.ReadAllBytes(path), Json)
        ?? throw new EngineException(FailureKind.Failed, "CorruptState", $"cannot read {path}: empty document");
}
