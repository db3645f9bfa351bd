namespace SystemContainers.Engine.Images;

/// <summary>image.json: an unpacked image, named by the sha256 of its tarball, with any number of aliases.</summary>
public sealed record ImageRecord(
    string Fingerprint,
    IReadOnlyList<string> Aliases,
    string Description,
    DateTimeOffset Created,
    long Size,
    string InitKind,
    IReadOnlyList<string>? DroppedDeviceNodes = null,
    IReadOnlyList<string>? DroppedEntries = null,
    int SchemaVersion = ImageRecord.CurrentSchema)
{
    public const int CurrentSchema = 1;
}

/// <summary>What runs as the container's PID 1, which decides how it is asked to shut down.</summary>
public static class InitKinds
{
    public const string Systemd = "systemd", Busybox = "busybox", Other = "other";

    /// <summary>systemd halts on SIGRTMIN+3, busybox init powers off on SIGUSR2; SIGPWR is the sysvinit/LXC convention.</summary>
    public static int StopSignal(string initKind) => initKind switch
    {
        Systemd => 34 + 3,
        Busybox => 12,
        _ => 30,
    };
}
