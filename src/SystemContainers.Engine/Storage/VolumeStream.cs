using SystemContainers.Engine.Images;
using SystemContainers.Engine.Runtime;

namespace SystemContainers.Engine.Storage;

/// <summary>
/// What a volume's stream is: tar (its root with the container's own ids, which every driver sends
/// and receives) or btrfs (a btrfs send stream, possibly incremental, only between btrfs pools).
/// </summary>
public enum VolumeFormat { Tar, Btrfs }

/// <summary>
/// What a received tree may hold, checked member by member as it is unpacked: owners below
/// MaxId (the container's id range, so no file, setuid or not, belongs to an id outside it),
/// no device nodes or sparse members, fifos only with Fifos (a copy between pools of this host,
/// whose stream the daemon itself writes), and at most Limits' bytes and entries.
/// </summary>
public sealed record ReceivePolicy(ImportLimits Limits, long MaxId, bool Fifos = false);

/// <summary>The tar stream of a tree every driver shares: GNU tar writes it, RootfsExtractor (the image import's checks) reads it.</summary>
internal static class TreeTar
{
    private static readonly ImportLimits Unlimited = new(long.MaxValue, long.MaxValue);

    private static readonly string[] Create = ["--create", "--file=-", "--format=posix", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--one-file-system"];

    public static Task SendAsync(string tree, Stream output, CancellationToken ct) =>
        PipedTool.RunAsync("tar", [.. Create, "--directory", tree, "."], null, output, $"write a tar stream of {tree}", ct);

    /// <summary>
    /// Adds the members of tree's tar stream to tarball, each through owners and, with a prefix,
    /// named prefix + its path in the root (hardlinks' targets too); null keeps tar's names. The
    /// members are read straight from tar's output pipe, one hop fewer than through SendAsync.
    /// </summary>
    public static Task AddMembersAsync(string tree, TarballWriter tarball, Func<TarMember, TarMember> owners, string? prefix, CancellationToken ct) =>
        Task.Run(async () =>
        {
            using var tar = PipedTool.Start("tar", [.. Create, "--directory", tree, "."], null, ct);
            var reader = new TarballReader(tar.Output, Unlimited);
            while (reader.Next() is TarMember m)
            {
                ct.ThrowIfCancellationRequested();
                var member = owners(m);
                if (prefix is not null && m.IsHardlink) member = member with { LinkName = prefix + Relative(m.LinkName) };
                tarball.Add(member, prefix is null ? m.Name : prefix + Relative(m.Name), reader.Read);
            }
            await tar.Output.CopyToAsync(Stream.Null, ct);
            await tar.WaitAsync($"write a tar stream of {tree}", ct);
        }, ct);

    /// <summary>A member name of GNU tar's ("./etc/passwd", "." for the root) relative to the root.</summary>
    private static string Relative(string name)
    {
        while (name.StartsWith("./", StringComparison.Ordinal)) name = name[2..];
        return name == "." ? "" : name;
    }

    /// <summary>
    /// Unpacks a tar stream into tree, an empty directory, with owners shifted into shift's host
    /// range when given; a refused member is an InvalidDataException naming it.
    /// </summary>
    public static void Receive(Stream input, string tree, ReceivePolicy policy, CancellationToken ct, Spec.IdMap? shift = null)
    {
        var unpacked = RootfsExtractor.Extract(new TarballReader(input, policy.Limits), tree, ct, policy.MaxId, shift?.UidBase ?? 0, shift?.GidBase ?? 0, policy.Fifos);
        // trusted.* xattrs are dropped as for images (overlayfs reads its own from them); anything else left out is refused.
        var refused = unpacked.DroppedDeviceNodes.Select(d => $"{d} (device node)").Concat(unpacked.DroppedEntries.Where(e => !e.Contains("(xattr ", StringComparison.Ordinal))).ToList();
        if (refused.Count > 0)
            throw new InvalidDataException($"it holds what a container's root may not: {string.Join(", ", refused.Take(5))}");
        // The end blocks and any padding after them are the stream's; read, so a sender is not left blocked on a full pipe.
        input.CopyTo(Stream.Null);
    }
}
