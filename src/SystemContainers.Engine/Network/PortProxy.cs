using System.Net.Sockets;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Network;

/// <summary>
/// One proxy device at work: a listening socket in the daemon's network namespace, and for each
/// connection a socket made in the container's network namespace, connected to the device's
/// connect address; bytes are carried both ways, each direction closed on its own.
/// </summary>
public sealed class PortProxy : IDisposable
{
    /// <summary>Connections one device carries at once; more are refused, so a flood costs the daemon bounded fds.</summary>
    public const int MaxConnections = 1024;
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _listener;
    private readonly SafeFd _netns;
    private readonly CancellationTokenSource _stop = new();
    private int _open;

    public ProxySpec Spec { get; }

    /// <summary>Listens at once (a busy port is an error here); takes ownership of netns.</summary>
    public PortProxy(ProxySpec spec, SafeFd netns)
    {
        Spec = spec;
        _listener = new Socket(spec.Listen.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // SO_REUSEADDR alone, so a restarted daemon binds past old connections' TIME_WAIT; .NET's
            // ReuseAddress would add SO_REUSEPORT, letting a second listener share a port in use.
            const int SOL_SOCKET = 1, SO_REUSEADDR = 2;
            _listener.SetRawSocketOption(SOL_SOCKET, SO_REUSEADDR, BitConverter.GetBytes(1));
            _listener.Bind(spec.Listen.EndPoint);
            _listener.Listen(128);
        }
        catch (SocketException e)
        {
            _listener.Dispose();
            throw new EngineException(FailureKind.Conflict, "ProxyListenFailed",
                $"cannot listen on {spec.Listen} for proxy device '{spec.Device}': {e.SocketErrorCode}", e);
        }
        _netns = netns;
        _ = AcceptLoop();
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested) return;
                continue;
            }
            if (Interlocked.Increment(ref _open) > MaxConnections)
            {
                Interlocked.Decrement(ref _open);
                client.Dispose();
                continue;
            }
            _ = Carry(client);
        }
    }

    private async Task Carry(Socket client)
    {
        try
        {
            using (client)
            using (var inside = NetworkNamespaceThread.Run(_netns, () => new Socket(Spec.Connect.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp)))
            {
                using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
                {
                    connecting.CancelAfter(ConnectTimeout);
                    await inside.ConnectAsync(Spec.Connect.EndPoint, connecting.Token);
                }
                await Task.WhenAll(Pump(client, inside), Pump(inside, client));
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException or NativeException)
        {
            // The container's end refused, timed out or is gone: the client sees its connection close.
        }
        finally
        {
            Interlocked.Decrement(ref _open);
        }
    }

    /// <summary>Copies until from's end closes, then closes to's sending side, so half-closes pass through.</summary>
    private async Task Pump(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            for (;;)
            {
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (n == 0) break;
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
            }
            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // One side failed: end the other direction too.
            from.Dispose();
            to.Dispose();
        }
    }

    /// <summary>
    /// Stops listening and ends every connection it carries. The token source is cancelled, not
    /// disposed: connections still winding down read its token.
    /// </summary>
    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        _netns.Dispose();
    }
}
