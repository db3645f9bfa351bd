using SystemContainers.Api;

namespace SystemContainers.PowerShell;

/// <summary>
/// Copy- and Move-SystemContainer between hosts, daemon to daemon: the client only orchestrates,
/// as lxc copy and lxc move do. The source (-Remote) makes a migration operation with a
/// single-use secret; the destination is told to pull the container's stream from it over TLS
/// pinned to the source's certificate. Nothing of the container passes through this client.
/// </summary>
public abstract class ContainerTransferCmdlet : SystemContainerCmdlet
{
    /// <summary>
    /// Has destinationHost make newName from the stopped container name of -Remote (live: from the
    /// running one, which the source removes once the destination runs it); false, with an error
    /// written, if it did not.
    /// </summary>
    protected bool Transfer(string name, string destinationHost, string newName, string? storagePool, bool includeSnapshots, bool move, out SystemContainer made,
        bool live = false)
    {
        made = default!;
        if (RemoteStore.Resolve(Remote) == RemoteStore.Resolve(destinationHost))
        {
            WriteError(ToErrorRecord(new SystemContainersApiException(400, "SameHost",
                $"the destination host '{destinationHost}' is the container's own host: copy it there with Copy-SystemContainer -Destination, or rename it"), name));
            return false;
        }
        var source = Client;
        var target = ClientFor(destinationHost);
        if (!TryCall(_ => SourceAddressAsync(source, $"container {name}"), name, out var from)) return false;
        if (!TryCall(c => c.CreateMigrationSourceAsync(name, includeSnapshots, Cancel, live), name, out var secret)) return false;
        bool pulled = false;
        try
        {
            pulled = TryCallWithProgress(report => target.PullContainerAsync(newName, storagePool, $"{from.Server}/1.0/operations/{secret.OperationId}",
                from.Certificate, secret.Secret, move, report, Cancel, live), $"{(move ? "Moving" : "Copying")} container {name} to {destinationHost}", name, out made);
            // The source ends its frozen copy once the destination said it runs it: that is the move's end.
            return pulled && (!live || TryCall(c => c.AwaitOperationAsync(secret.OperationId, Cancel), name));
        }
        finally
        {
            if (!pulled) WithdrawSecret(source, secret.OperationId);
        }
    }
}
