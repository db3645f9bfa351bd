namespace SystemContainers.Engine.Host;

/// <summary>How a host fact stands: usable, optional and absent, degrading something, or blocking containers.</summary>
public enum HostCheckStatus { Ok, Info, Warning, Failed }

/// <summary>
/// One fact about the host, as lxc-checkconfig reports it: what was looked at, what it is,
/// what containers need (for limits: the value for the number of containers asked about) and why.
/// </summary>
public sealed record HostFinding(string Category, string Name, HostCheckStatus Status, string Value, string? Needed, string Detail);
