using System.Security.Cryptography;
using System.Text;

namespace SystemContainers.Daemon;

/// <summary>
/// Single-use, short-lived secrets that let another daemon fetch one image without being trusted
/// (POST /1.0/images/{fingerprint}/secret, as LXD's): each is an operation that runs until its
/// secret is used, it expires or it is cancelled. The trust gate redeems them for
/// GET /1.0/images/{fingerprint}/export?secret=.
/// </summary>
public sealed class ImageSecrets(OperationRegistry operations)
{
    public static readonly TimeSpan DefaultLifetime = SingleUseSecret.DefaultLifetime;

    public OperationRecord Issue(string fingerprint, TimeSpan lifetime)
    {
        var claimed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var op = operations.Start($"Secret to send image {fingerprint[..12]}", new() { ["images"] = [$"/1.0/images/{fingerprint}"] }, async op =>
        {
            await SingleUseSecret.WaitClaimedAsync(op, claimed, lifetime, $"for image {fingerprint[..12]}");
            return null;
        }, withSecret: true);
        op.Attachment = new ImageSecret(fingerprint, claimed);
        return op;
    }

    /// <summary>True, once, for the live secret of exactly this image; it is used up by the call.</summary>
    public bool Redeem(string fingerprint, string secret) => operations.All.Any(op =>
        op.Attachment is ImageSecret s && s.Fingerprint == fingerprint && SingleUseSecret.Matches(op, secret) && s.Claimed.TrySetResult());

    private sealed record ImageSecret(string Fingerprint, TaskCompletionSource Claimed);
}
