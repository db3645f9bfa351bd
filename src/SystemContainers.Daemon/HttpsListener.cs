using Microsoft.AspNetCore.Connections;
using System.Net;
using System.Security.Authentication;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using SystemContainers.Engine;
using SystemContainers.Engine.Remote;

namespace SystemContainers.Daemon;

/// <summary>
/// The daemon's second listener: HTTPS on core.https_address, TLS 1.3 only, with the server
/// certificate, asking every client for its certificate at the handshake (any may connect: the
/// trust gate judges the fingerprint, so an untrusted client can still read GET /1.0 and redeem a
/// token). It is a web application of its own, so it starts, moves and stops while the unix
/// socket keeps serving; it maps the same routes as the socket.
/// </summary>
public sealed class HttpsListener(RemoteAccess remote, TrustGate gate, Action<WebApplication> mapRoutes, CancellationToken daemonStopping) : IAsyncDisposable
{
    private readonly SemaphoreSlim _turn = new(1, 1);
    private WebApplication? _app;

    /// <summary>Where it listens now; null while off.</summary>
    public IPEndPoint? Listening { get; private set; }

    /// <summary>Listens on address ("" for off), replacing the current listener; a bind failure leaves it off and throws.</summary>
    public async Task ApplyAsync(string address)
    {
        var endpoint = address.Length == 0 ? null : HttpsEndpoint.Parse(address);
        await _turn.WaitAsync();
        try
        {
            await StopAsync();
            if (endpoint is null) return;
            var app = Build(endpoint);
            try
            {
                await app.StartAsync();
            }
            catch (IOException e)
            {
                await app.DisposeAsync();
                throw EngineException.Invalid("CannotListen", $"cannot listen on {endpoint} for HTTPS: {e.Message}");
            }
            _app = app;
            Listening = endpoint;
            DaemonLog.Info($"listening on https://{endpoint} (certificate {remote.Fingerprint})");
        }
        finally
        {
            _turn.Release();
        }
    }

    private WebApplication Build(IPEndPoint endpoint)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPool.Factory>();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = RestApi.MaxBodyBytes;
            k.Listen(endpoint, listen =>
            {
                // HTTP/2 lets a client carry its websockets (events, exec, console; RFC 8441) as streams
                // of the connections its requests use, with no TLS handshake each; HTTP/1.1 stays for curl and the like.
                listen.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1AndHttp2;
                listen.UseHttps(new HttpsConnectionAdapterOptions
                {
                    ServerCertificate = remote.Certificate,
                    SslProtocols = SslProtocols.Tls13,
                    ClientCertificateMode = ClientCertificateMode.AllowCertificate,
                    // Self-signed client certificates have no chain to check: trust is the fingerprint, judged by the gate.
                    ClientCertificateValidation = (_, _, _) => true,
                });
            });
        });
        var app = builder.Build();
        Pipeline.UseCommon(app, daemonStopping, gate.Check);
        mapRoutes(app);
        return app;
    }

    private async Task StopAsync()
    {
        if (_app is null) return;
        await _app.StopAsync(TimeSpan.FromSeconds(5));
        await _app.DisposeAsync();
        _app = null;
        DaemonLog.Info($"stopped listening on https://{Listening}");
        Listening = null;
    }

    public async ValueTask DisposeAsync()
    {
        await _turn.WaitAsync();
        try { await StopAsync(); }
        finally { _turn.Release(); }
    }
}
