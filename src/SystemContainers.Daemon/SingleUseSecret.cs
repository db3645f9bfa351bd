using System.Security.Cryptography;
using System.Text;

namespace SystemContainers.Daemon;

/// <summary>
/// What image and container transfers between daemons share: an operation's secret that one
/// request may use once before it expires, and the constant-time check of a presented secret.
/// </summary>
public static class SingleUseSecret
{
    public static readonly TimeSpan DefaultLifetime = TimeSpan.FromSeconds(60);

    /// <summary>Waits until claimed is set, or fails with SecretExpired after lifetime (claiming it then, so a later use fails rather than races the expiry).</summary>
    public static async Task WaitClaimedAsync(OperationRecord op, TaskCompletionSource claimed, TimeSpan lifetime, string what)
    {
        using var cancel = op.Cancellation.Token.Register(() => claimed.TrySetCanceled());
        if (await Task.WhenAny(claimed.Task, Task.Delay(lifetime)) != claimed.Task && claimed.TrySetCanceled())
            throw new Engine.EngineException(Engine.FailureKind.Forbidden, "SecretExpired", $"the secret {what} was not used within {lifetime.TotalSeconds} s");
        op.Cancellation.Token.ThrowIfCancellationRequested();
    }

    /// <summary>True when secret is the operation's own, compared in constant time.</summary>
    public static bool Matches(OperationRecord op, string secret) =>
        op.Secret is string known && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(known), Encoding.ASCII.GetBytes(secret));
}
