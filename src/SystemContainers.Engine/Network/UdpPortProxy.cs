using System.Net;
using System.Net.Sockets;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Network;

/// <summary>
/// A UDP proxy device: each client address that sends to the host port gets a socket of its own
/// inside the container, connected to the connect address, so the container's replies go back to
/// that client alone. A client silent for IdleTimeout has its socket closed, like a conntrack entry.
/// </summary>
public sealed class UdpPortProxy : PortProxy
{
    /// <summary>conntrack's timeout for a UDP flow that has seen replies (nf_conntrack_udp_timeout_stream).</summary>
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(120);
    private const int MaxDatagram = 65535;

    private sealed class Flow(Socket inside, EndPoint client)
    {
        public Socket Inside { get; } = inside;
        public EndPoint Client { get; } = client;
        public long LastUsed = Environment.TickCount64;
        public void Touch() => Volatile.Write(ref LastUsed, Environment.TickCount64);
    }

    private readonly object _lock = new();
    private readonly Dictionary<EndPoint, Flow> _flows = [];
    private readonly Timer _sweep;

    public UdpPortProxy(ProxySpec spec, SafeFd netns) : base(spec, netns, SocketType.Dgram, ProtocolType.Udp)
    {
        _sweep = new Timer(_ => Sweep(), null, IdleTimeout / 4, IdleTimeout / 4);
        _ = ReceiveLoop();
    }

    private async Task ReceiveLoop()
    {
        var buffer = new byte[MaxDatagram];
        EndPoint any = new IPEndPoint(Spec.Listen.Address.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!Stop.IsCancellationRequested)
        {
            SocketReceiveFromResult datagram;
            try
            {
                datagram = await Listener.ReceiveFromAsync(buffer, SocketFlags.None, any, Stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (Stop.IsCancellationRequested) return;
                continue;
            }
            if (FlowOf(datagram.RemoteEndPoint) is not { } flow) continue;
            try
            {
                await flow.Inside.SendAsync(buffer.AsMemory(0, datagram.ReceivedBytes), SocketFlags.None, Stop.Token);
                flow.Touch();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Nothing listens inside yet (an earlier ICMP refusal), or the flow was just swept: UDP drops it.
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>The client's flow, made on its first datagram; null past MaxClients or when the container's namespace is gone.</summary>
    private Flow? FlowOf(EndPoint client)
    {
        lock (_lock)
        {
            if (_flows.TryGetValue(client, out var flow)) return flow;
            if (_flows.Count >= MaxClients || Stop.IsCancellationRequested) return null;
            Socket? inside = null;
            try
            {
                inside = InsideSocket(SocketType.Dgram, ProtocolType.Udp);
                inside.Connect(Spec.Connect.EndPoint);
            }
            catch (Exception e) when (e is SocketException or NativeException)
            {
                inside?.Dispose();
                return null;
            }
            _flows[client] = flow = new Flow(inside, client);
            _ = Replies(flow);
            return flow;
        }
    }

    private async Task Replies(Flow flow)
    {
        var buffer = new byte[MaxDatagram];
        while (!Stop.IsCancellationRequested)
        {
            try
            {
                int n = await flow.Inside.ReceiveAsync(buffer, SocketFlags.None, Stop.Token);
                await Listener.SendToAsync(buffer.AsMemory(0, n), SocketFlags.None, flow.Client, Stop.Token);
                flow.Touch();
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
            {
                // ICMP port unreachable from inside: nothing listens there now; a later datagram may find a server.
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Sweep()
    {
        long now = Environment.TickCount64;
        lock (_lock)
        {
            foreach (var (client, flow) in _flows.Where(f => now - Volatile.Read(ref f.Value.LastUsed) > (long)IdleTimeout.TotalMilliseconds).ToList())
            {
                _flows.Remove(client);
                flow.Inside.Dispose();
            }
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _sweep.Dispose();
        lock (_lock)
        {
            foreach (var flow in _flows.Values) flow.Inside.Dispose();
            _flows.Clear();
        }
    }
}
