using System.Net.Sockets;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Network;

/// <summary>
/// A TCP proxy device: each connection accepted on the host is connected anew inside the
/// container; bytes are carried both ways, each direction closed on its own.
/// </summary>
public sealed class TcpPortProxy : PortProxy
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private int _open;

    public TcpPortProxy(ProxySpec spec, SafeFd netns) : base(spec, netns, SocketType.Stream, ProtocolType.Tcp)
    {
        _ = AcceptLoop();
    }

    private async Task AcceptLoop()
    {
        while (!Stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await Listener.AcceptAsync(Stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (Stop.IsCancellationRequested) return;
                continue;
            }
            if (Interlocked.Increment(ref _open) > MaxClients)
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
            using (var inside = InsideSocket(SocketType.Stream, ProtocolType.Tcp))
            {
                using (var connecting = CancellationTokenSource.CreateLinkedTokenSource(Stop.Token))
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
                int n = await from.ReceiveAsync(buffer, SocketFlags.None, Stop.Token);
                if (n == 0) break;
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, Stop.Token);
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
}
