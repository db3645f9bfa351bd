using System.Net.Sockets;
using SystemContainers.Engine.Interop;
using SystemContainers.Engine.Spec;

namespace SystemContainers.Engine.Network;

/// <summary>
/// One proxy device at work: a socket bound in the daemon's network namespace, and for each
/// client a socket made in the container's network namespace towards the device's connect
/// address. TCP carries connections (TcpPortProxy), UDP carries datagrams (UdpPortProxy).
/// </summary>
public abstract class PortProxy : IDisposable
{
    /// <summary>Clients one device carries at once; more are refused, so a flood costs the daemon bounded fds.</summary>
    public const int MaxClients = 1024;

    protected readonly Socket Listener;
    protected readonly SafeFd Netns;
    protected readonly CancellationTokenSource Stop = new();

    public ProxySpec Spec { get; }

    /// <summary>Binds at once (a busy port is an error here); takes ownership of netns.</summary>
    public static PortProxy Start(ProxySpec spec, SafeFd netns) =>
        spec.Listen.Protocol == "udp" ? new UdpPortProxy(spec, netns) : new TcpPortProxy(spec, netns);

    protected PortProxy(ProxySpec spec, SafeFd netns, SocketType type, ProtocolType protocol)
    {
        Spec = spec;
        Listener = new Socket(spec.Listen.Address.AddressFamily, type, protocol);
        try
        {
            // SO_REUSEADDR alone, so a restarted daemon binds past old connections' TIME_WAIT; .NET's
            // ReuseAddress would add SO_REUSEPORT, letting a second listener share a port in use.
            const int SOL_SOCKET = 1, SO_REUSEADDR = 2;
            Listener.SetRawSocketOption(SOL_SOCKET, SO_REUSEADDR, BitConverter.GetBytes(1));
            Listener.Bind(spec.Listen.EndPoint);
            if (type == SocketType.Stream) Listener.Listen(128);
        }
        catch (SocketException e)
        {
            Listener.Dispose();
            throw new EngineException(FailureKind.Conflict, "ProxyListenFailed",
                $"cannot listen on {spec.Listen} for proxy device '{spec.Device}': {e.SocketErrorCode}", e);
        }
        Netns = netns;
    }

    /// <summary>A socket in the container's network namespace, of the device's connect family.</summary>
    protected Socket InsideSocket(SocketType type, ProtocolType protocol) =>
        NetworkNamespaceThread.Run(Netns, () => new Socket(Spec.Connect.Address.AddressFamily, type, protocol));

    /// <summary>
    /// Stops listening and ends every client it carries. The token source is cancelled, not
    /// disposed: clients still winding down read its token.
    /// </summary>
    public virtual void Dispose()
    {
        Stop.Cancel();
        Listener.Dispose();
        Netns.Dispose();
        GC.SuppressFinalize(this);
    }
}
