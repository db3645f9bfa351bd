namespace SystemContainers.Engine.Remote;

/// <summary>A client certificate the daemon trusts over HTTPS, by its SHA-256 fingerprint.</summary>
public sealed record TrustedClient(string Fingerprint, string Name, string Certificate, DateTimeOffset AddedAt);
