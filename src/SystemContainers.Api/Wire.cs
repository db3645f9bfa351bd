using System.Text.Json;
using System.Text.Json.Serialization;

namespace SystemContainers.Api;

/// <summary>The JSON conventions of the REST API (LXD-style snake_case).</summary>
public static class Wire
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };
}

/// <summary>Every response: "sync" with metadata, "async" with an operation, or "error".</summary>
public sealed record ApiResponse(
    string Type,
    string? Status = null,
    int StatusCode = 0,
    string? Operation = null,
    int ErrorCode = 0,
    string? Error = null,
    string? ErrorId = null,
    JsonElement? Metadata = null);

/// <summary>GET /1.0: the daemon, its host and what it holds (Get-SystemContainerHost).</summary>
public sealed record SystemContainerHost : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public string ApiVersion { get; init; } = "1.0";
    public string ServerVersion { get; init; } = "";
    public string Hostname { get; init; } = "";
    /// <summary>The kernel release (uname -r).</summary>
    public string Kernel { get; init; } = "";
    /// <summary>v1, v2 or hybrid: where the daemon keeps its containers' cgroups.</summary>
    public string CgroupVersion { get; init; } = "";
    public int Pid { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public string StateDir { get; init; } = "";
    /// <summary>The file system the state dir (images and container root file systems) lives on.</summary>
    public string StateDirFilesystem { get; init; } = "";
    public long StateDirSize { get; init; }
    public long StateDirFree { get; init; }
    public int Containers { get; init; }
    public int Running { get; init; }
    public int Frozen { get; init; }
    public int Images { get; init; }
    public int Networks { get; init; }
    /// <summary>The container config keys this daemon knows; prefixes end in a dot (user., environment.). Tab completion offers them.</summary>
    public string[] ContainerConfigKeys { get; init; } = [];
    /// <summary>The network config keys this daemon knows.</summary>
    public string[] NetworkConfigKeys { get; init; } = [];
    /// <summary>Where the containers' lxcfs views come from: system (the host's), daemon (its own), missing or failed.</summary>
    public string Lxcfs { get; init; } = "";
    /// <summary>The lxcfs mount the containers' /proc and /sys files come from; null without one.</summary>
    public string? LxcfsMount { get; init; }
    /// <summary>The daemon's own lxcfs process; null when the host's serves or none runs.</summary>
    public int? LxcfsPid { get; init; }
    /// <summary>Why lxcfs is as it is, in a sentence.</summary>
    public string LxcfsDetail { get; init; } = "";
    /// <summary>trusted, or untrusted for an HTTPS client whose certificate the daemon does not trust (it sees only this and ServerFingerprint).</summary>
    public string Auth { get; init; } = "trusted";
    /// <summary>SHA-256 of the daemon's HTTPS certificate, lower-case hex.</summary>
    public string ServerFingerprint { get; init; } = "";
    /// <summary>Where other hosts reach the HTTPS listener (every interface's address for a wildcard); empty while it is off.</summary>
    public string[] Addresses { get; init; } = [];
    /// <summary>The daemon's own settings (core.https_address).</summary>
    public Dictionary<string, string> Config { get; init; } = [];
}

/// <summary>A system container as the API and the cmdlets show it.</summary>
public sealed record SystemContainer : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public required string Name { get; init; }
    public required string Status { get; init; }
    public string? Image { get; init; }
    public required string ImageFingerprint { get; init; }
    public int? Pid { get; init; }
    [JsonPropertyName("ipv4")]
    public TextList IPv4 { get; init; } = [];
    [JsonPropertyName("ipv6")]
    public TextList IPv6 { get; init; } = [];
    public DateTimeOffset Created { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset? StoppedAt { get; init; }
    public int? LastExitCode { get; init; }
    public int? LastExitSignal { get; init; }
    public bool Privileged { get; init; }
    public string InitKind { get; init; } = "";
    public Dictionary<string, string> Config { get; init; } = new();
    /// <summary>The container's identity: a later container of the same name has another.</summary>
    public Guid Id { get; init; }
    /// <summary>Why the status is Error (a damaged state file, named with the reason).</summary>
    public string? Error { get; init; }
    /// <summary>What the daemon last did to reconcile the container after a crash or a failed start.</summary>
    public string? Recovery { get; init; }
    /// <summary>The storage pool that holds the container's root.</summary>
    public string StoragePool { get; init; } = "default";
    /// <summary>Stopped with its state saved (Stop-SystemContainer -Stateful): the next start restores its processes.</summary>
    public bool Stateful { get; init; }
}

public sealed record SystemContainerImage : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public required string Fingerprint { get; init; }
    public TextList Aliases { get; init; } = [];
    public string Description { get; init; } = "";
    public DateTimeOffset Created { get; init; }
    public long Size { get; init; }
    public string InitKind { get; init; } = "";
    /// <summary>Device nodes the tarball carried, left out of the image (containers get their /dev from the runtime).</summary>
    public TextList DroppedDeviceNodes { get; init; } = [];
    /// <summary>Other members the import left out, each with the reason in parentheses: FIFOs, sparse files, other types, trusted.* xattrs.</summary>
    public TextList DroppedEntries { get; init; } = [];

    /// <summary>The first alias, else the short fingerprint: what people call it.</summary>
    [JsonIgnore]
    public string Name => Aliases.Count > 0 ? Aliases[0] : Fingerprint[..12];
}

/// <summary>What Invoke-SystemContainerCommand -PassThru returns.</summary>
public sealed record SystemContainerCommandResult
{
    public required string Container { get; init; }
    public required TextList Command { get; init; }
    public int ExitCode { get; init; }
    public string Stdout { get; init; } = "";
    public string Stderr { get; init; } = "";
}

public sealed record Operation
{
    public required string Id { get; init; }
    public string Description { get; init; } = "";
    public string Status { get; init; } = "";
    public int StatusCode { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }
    public Dictionary<string, string[]> Resources { get; init; } = new();
    public JsonElement? Metadata { get; init; }
    public string? Err { get; init; }
    public string? ErrId { get; init; }
}

/// <summary>One event of /1.0/events: Id rises by one per event the daemon publishes.</summary>
public sealed record EventMessage(string Type, DateTimeOffset Timestamp, JsonElement Metadata, long Id = 0);

/// <summary>
/// An event as Get-SystemContainerEvent shows it. Lifecycle events name the action
/// (container-started) and the resource; operation events carry the operation, its status as the action.
/// </summary>
public sealed record SystemContainerEvent
{
    public long Id { get; init; }
    public required string Type { get; init; }
    public DateTimeOffset Timestamp { get; init; }
    public string Action { get; init; } = "";
    /// <summary>The resource's path, like /1.0/containers/web.</summary>
    public string Source { get; init; } = "";
    /// <summary>The resource's name: the last part of Source.</summary>
    public string Name { get; init; } = "";
    public Operation? Operation { get; init; }
    public JsonElement Metadata { get; init; }
}

/// <summary>GET /1.0/containers/{name}/console?from=N: the console log from byte N on, and where the next read starts.</summary>
public sealed record ConsoleLogChunk(string Text, long Next, bool Restarted);

/// <summary>
/// POST /1.0/containers: from Image, or with Source a copy of another container (LXD's shape); with
/// Start (LXD's instance_create_start) the answer is the operation that starts it.
/// </summary>
public sealed record ContainerCreateRequest(string Name, string? Image, Dictionary<string, string>? Config = null, bool Start = false, string? StoragePool = null,
    ContainerSource? Source = null);

/// <summary>
/// Where a new container comes from, as LXD's instance source: Type "copy" with Source "NAME" or
/// "NAME/SNAPSHOT" (a copy of NAME carries its snapshots unless InstanceOnly); or Type "migration", Mode "pull": another daemon's migration Operation
/// (https://address:port/1.0/operations/ID) whose server certificate has the SHA-256 Certificate,
/// fetched with Secrets["fs"]. Move keeps the container's MACs (its source is removed afterwards);
/// a copy gets new ones.
/// </summary>
public sealed record ContainerSource(string Type, string? Source = null, string? Mode = null, string? Operation = null, string? Certificate = null,
    Dictionary<string, string>? Secrets = null, bool Move = false, bool InstanceOnly = false, bool Live = false);

/// <summary>
/// POST /1.0/operations/{id}/control?secret=: a live move's target tells the source whether it runs
/// the container (the source then ends its frozen copy) or not, and why (the source then resumes it).
/// </summary>
public sealed record MigrationVerdict(bool Success, string? Error = null);

/// <summary>
/// PUT /1.0/containers/NAME/state, as LXD's: Stateful with "stop" saves the processes first (criu);
/// Stateless with "start" discards a saved state and boots afresh (a start otherwise restores it).
/// </summary>
public sealed record ContainerStateRequest(string Action, bool Force = false, int? Timeout = null, bool Stateful = false, bool Stateless = false);

/// <summary>PUT /1.0/containers/state: one state action on many containers, Parallel of them at a time in the daemon.</summary>
public sealed record ContainerBulkStateRequest(List<string> Names, string Action, bool Force = false, int? Timeout = null, int? Parallel = null,
    bool Stateful = false, bool Stateless = false);

/// <summary>DELETE /1.0/containers: many containers removed, Parallel of them at a time in the daemon.</summary>
public sealed record ContainerBulkDeleteRequest(List<string> Names, bool Force = false, int? Parallel = null);

/// <summary>One name's outcome in a bulk request: the container as it now is (none after a removal), or its error's status code, id and message.</summary>
public sealed record ContainerBulkResult(string Name, SystemContainer? Container = null, int? ErrorCode = null, string? ErrorId = null, string? Error = null);

public sealed record ExecCommandRequest(
    string[] Command,
    Dictionary<string, string>? Environment = null,
    string? Cwd = null,
    int User = 0,
    int Group = 0,
    bool Interactive = false,
    int Width = 80,
    int Height = 24,
    bool Stream = false);

/// <summary>What a file push wrote into a container, and what it left out (fifos, devices, hard links).</summary>
public sealed record FilePushSummary(int Files, int Directories, int Links, long Bytes, List<string> Skipped);

/// <summary>Result metadata of a non-interactive exec operation.</summary>
public sealed record ExecCommandResult(int Return, string Stdout, string Stderr);

/// <summary>Interactive exec: the operation's metadata carries the secret for its websocket.</summary>
public sealed record ExecInteractiveMetadata(string Secret);

/// <summary>
/// Control frames on an exec websocket (text frames): "window-resize" (interactive), "close-stdin"
/// and "signal" (streamed). Raw bytes go as binary frames: input as it is; output as it is on a
/// terminal, and on a streamed exec behind one byte that names the stream (<see cref="StdoutStream"/>
/// or <see cref="StderrStream"/>). The daemon's close frame says how the command ended
/// (<see cref="ExitReason"/>), so a client needs no request after it; a close without one (the
/// operation was cancelled) sends the client to the operation.
/// </summary>
public sealed record ExecControl(string Command, int Width = 0, int Height = 0, int Signal = 0)
{
    public const byte StdoutStream = 1, StderrStream = 2;

    public static string ExitReason(int code) => $"exit {code}";

    public static int? ExitCodeOf(string? closeReason) =>
        closeReason is { } r && r.StartsWith("exit ", StringComparison.Ordinal) &&
        int.TryParse(r.AsSpan(5), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out int code)
            ? code : null;
}

/// <summary>POST /1.0/images/aliases: one more name (Name) for the image Target (an alias or fingerprint).</summary>
public sealed record ImageAliasRequest(string? Name, string? Target);

/// <summary>
/// POST /1.0/images: import a tarball the daemon can read, build one (source "busybox" or
/// "debootstrap"), or pull one from another daemon (source "pull": from Server, https://address:port,
/// whose certificate has the SHA-256 Certificate, the image Fingerprint with the Secret that daemon issued),
/// or publish a container (source "container": Container is NAME, or NAME/SNAPSHOT for one of its snapshots).
/// </summary>
public sealed record ImageCreateRequest(
    string Source,
    string? Path = null,
    string? Alias = null,
    string? Description = null,
    string? Release = null,
    string? Mirror = null,
    string? Server = null,
    string? Secret = null,
    string? Certificate = null,
    string? Fingerprint = null,
    string? Container = null);

/// <summary>POST /1.0/images/{fingerprint}/secret: how long the single-use secret lives (default 60 s).</summary>
public sealed record ImageSecretRequest(int? ExpiresInSeconds = null);

/// <summary>
/// POST /1.0/containers/{name}, as LXD's: the stopped container's new Name (a rename), or with
/// Migration an operation whose single-use secret lets another daemon pull the container (with
/// its snapshots unless InstanceOnly) within ExpiresInSeconds (default 60).
/// </summary>
public sealed record ContainerPostRequest(string? Name = null, bool Migration = false, bool InstanceOnly = false, int? ExpiresInSeconds = null, bool Live = false);

/// <summary>PATCH /1.0/containers/{name}: config keys to set; a null or empty value removes the key.</summary>
public sealed record ContainerUpdateRequest(Dictionary<string, string?> Config);

public sealed record NetworkInterfaceStats
{
    public required string Name { get; init; }
    public long RxBytes { get; init; }
    public long RxPackets { get; init; }
    public long TxBytes { get; init; }
    public long TxPackets { get; init; }
}

/// <summary>One sample of a container's resource use (Get-ContainerStats). Limits are null when unlimited.</summary>
public sealed record SystemContainerStats : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public required string Name { get; init; }
    public required string Status { get; init; }
    public DateTimeOffset SampledAt { get; init; }
    public TimeSpan Uptime { get; init; }
    /// <summary>CPU use over CpuInterval, 100 being one CPU fully busy.</summary>
    public double CpuPercent { get; init; }
    public TimeSpan CpuInterval { get; init; }
    public long CpuTimeNanoseconds { get; init; }
    public long CpuUserNanoseconds { get; init; }
    public long CpuSystemNanoseconds { get; init; }
    public long MemoryUsage { get; init; }
    public long MemoryPeak { get; init; }
    public long? MemoryLimit { get; init; }
    public long MemoryCache { get; init; }
    public long MemorySwap { get; init; }
    /// <summary>How often the memory limit was hit (v1 memory.failcnt, v2 memory.events max).</summary>
    public long MemoryLimitHits { get; init; }
    public long OomKills { get; init; }
    public long Processes { get; init; }
    public long? ProcessesLimit { get; init; }
    public NetworkInterfaceStats[] Network { get; init; } = [];
    /// <summary>Bytes received over every interface but loopback.</summary>
    public long NetRxBytes { get; init; }
    public long NetTxBytes { get; init; }
    /// <summary>Bytes of the files in the container's volume: its overlay upper layer in the default pool, its whole copy or snapshot in a dir or btrfs pool.</summary>
    public long DiskUsage { get; init; }
    /// <summary>Why DiskUsage counts only part of the tree (too many entries, too deep, too slow); null when it is all of it.</summary>
    public string? DiskUsagePartial { get; init; }
    /// <summary>The root disk size (limits.disk) the storage pool enforces; null when there is none.</summary>
    public long? DiskLimit { get; init; }
}

/// <summary>A managed bridge network: its bridge, subnets, NAT, DNS domain and the containers on it.</summary>
public sealed record SystemContainerNetwork : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public required string Name { get; init; }
    public string Type { get; init; } = "bridge";
    [JsonPropertyName("ipv4")]
    public string IPv4 { get; init; } = "";
    [JsonPropertyName("ipv6")]
    public string? IPv6 { get; init; }
    public bool Nat { get; init; }
    public string Domain { get; init; } = "";
    public TextList UsedBy { get; init; } = [];
    public int? DnsmasqPid { get; init; }
    public DateTimeOffset Created { get; init; }
    public Dictionary<string, string> Config { get; init; } = new();
}

/// <summary>A DHCP lease of a network, or a container's fixed address (type "static").</summary>
public sealed record SystemContainerNetworkLease
{
    public required string Network { get; init; }
    public string Hostname { get; init; } = "";
    public string HwAddr { get; init; } = "";
    public string Address { get; init; } = "";
    public string Type { get; init; } = "";
    public DateTimeOffset? Expires { get; init; }
}

/// <summary>A storage pool: its driver and source, the containers on it, the bytes their volumes hold and its file system's space.</summary>
public sealed record SystemContainerStoragePool : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public required string Name { get; init; }
    /// <summary>overlay (the default pool), dir or btrfs.</summary>
    public string Driver { get; init; } = "";
    /// <summary>The directory the pool is in, or the loop file a btrfs pool made.</summary>
    public string Source { get; init; } = "";
    public string? Description { get; init; }
    public TextList UsedBy { get; init; } = [];
    /// <summary>Bytes of the files in the pool's container volumes.</summary>
    public long UsedBytes { get; init; }
    /// <summary>Why UsedBytes counts only part of the volumes (too many entries, too slow); null when it is all of them.</summary>
    public string? UsedPartial { get; init; }
    /// <summary>Bytes free on the pool's file system.</summary>
    public long FreeBytes { get; init; }
    public long TotalBytes { get; init; }
    /// <summary>Why the pool cannot be used now (its loop file did not mount, its directory is gone); null when it can.</summary>
    public string? Error { get; init; }
    public DateTimeOffset Created { get; init; }
    public Dictionary<string, string> Config { get; init; } = new();
}

/// <summary>A read-only snapshot of a container's root file system (btrfs pools).</summary>
public sealed record SystemContainerSnapshot : IRemoteObject
{
    /// <inheritdoc/>
    [JsonIgnore] public string? Remote { get; set; }
    public required string ContainerName { get; init; }
    public required string SnapshotName { get; init; }
    public DateTimeOffset Created { get; init; }
    /// <summary>When the daemon deletes it (LXD's expires_at); null: kept until removed.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
    /// <summary>It holds the running processes too (LXD's stateful), for Restore-SystemContainerSnapshot -Stateful.</summary>
    public bool Stateful { get; init; }
}

/// <summary>POST /1.0/containers/{name}/snapshots; no name: by snapshots.pattern (snap0, snap1, ...); ExpiresAt as LXD's expires_at; Stateful keeps the processes (criu).</summary>
public sealed record SnapshotCreateRequest(string? Name = null, DateTimeOffset? ExpiresAt = null, bool Stateful = false);

/// <summary>POST /1.0/containers/{name}/snapshots/{snapshot}/restore: Stateful restores the snapshot's processes too and runs them.</summary>
public sealed record SnapshotRestoreRequest(bool Stateful = false);

/// <summary>POST /1.0/containers/{name}/snapshots/{snapshot}: the snapshot's new name.</summary>
public sealed record SnapshotRenameRequest(string Name);

public sealed record StoragePoolCreateRequest(string Name, string Driver, string? Source = null, Dictionary<string, string>? Config = null);

public sealed record StoragePoolUpdateRequest(Dictionary<string, string?> Config);

public sealed record NetworkCreateRequest(string Name, Dictionary<string, string>? Config = null);

public sealed record NetworkUpdateRequest(Dictionary<string, string?> Config);

/// <summary>One fact about the host (Test-SystemContainerHost): a kernel feature, cgroup fact, tool or density limit.</summary>
public sealed record SystemContainerHostCheck
{
    /// <summary>kernel, cgroup, tool or limit.</summary>
    public required string Category { get; init; }
    public required string Name { get; init; }
    /// <summary>Ok, Info (optional and absent), Warning (something degrades) or Failed (containers cannot run as meant).</summary>
    public required string Status { get; init; }
    public string Value { get; init; } = "";
    /// <summary>What containers need; for limits, the value for the number of containers asked about.</summary>
    public string? Needed { get; init; }
    public string Detail { get; init; } = "";
}

/// <summary>POST /1.0/host/checks/fix: raise the host limits for this many containers.</summary>
public sealed record HostFixRequest(int? Containers = null);

/// <summary>A sysctl the fix raised.</summary>
public sealed record HostSysctlChange(string Key, long Before, long After);

/// <summary>What the fix did (the sysctl.d file it wrote, the values it raised now) and the checks after it.</summary>
public sealed record HostFixResult(string SysctlFile, HostSysctlChange[] Changes, SystemContainerHostCheck[] Checks);

/// <summary>A client certificate the daemon trusts over HTTPS (Get-SystemContainerTrust).</summary>
public sealed record SystemContainerTrust
{
    public required string Name { get; init; }
    /// <summary>SHA-256 of the certificate's DER, lower-case hex.</summary>
    public required string Fingerprint { get; init; }
    /// <summary>The certificate, DER in base64.</summary>
    public string Certificate { get; init; } = "";
    public DateTimeOffset AddedAt { get; init; }
}

/// <summary>POST /1.0/certificates over HTTPS: trust the certificate this connection presents, by a token.</summary>
public sealed record TrustRedeemRequest(string Token);

/// <summary>POST /1.0/certificates/tokens: invite a client by name; expires in ExpiresInSeconds (default an hour).</summary>
public sealed record TrustTokenRequest(string ClientName, int? ExpiresInSeconds = null);

/// <summary>A trust token: the text to hand to Add-SystemContainerRemote, and what it holds.</summary>
public sealed record SystemContainerTrustToken
{
    public required string ClientName { get; init; }
    public required string Token { get; init; }
    public required string ServerFingerprint { get; init; }
    public string[] Addresses { get; init; } = [];
    public DateTimeOffset ExpiresAt { get; init; }
}

/// <summary>PATCH /1.0: server settings by key (core.https_address).</summary>
public sealed record HostUpdateRequest(Dictionary<string, string> Config);

/// <summary>
/// An object that remembers the remote it came from (null: the local daemon), so a cmdlet it is
/// piped to acts on the same host: its -Remote binds by property name. Never on the wire.
/// </summary>
public interface IRemoteObject
{
    /// <summary>The remote the object came from; null for the local daemon.</summary>
    string? Remote { get; set; }
}
