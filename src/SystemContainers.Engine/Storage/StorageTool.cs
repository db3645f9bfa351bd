using SystemContainers.Engine.Interop;

namespace SystemContainers.Engine.Storage;

/// <summary>The storage programs the drivers run (mkfs.btrfs, mount, btrfs quota): a non-zero exit is an error with its message.</summary>
internal static class StorageTool
{
    public static void Run(string tool, string[] argv, string what)
    {
        var (code, error) = Sys.Run(tool, argv, "");
        if (code != 0) throw new EngineException(FailureKind.Failed, "StorageToolFailed", $"cannot {what}: {argv[0]} exit {code}: {error}");
    }
}
