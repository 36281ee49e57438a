using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace MitmCache.Hosting;

/// <summary>
/// When Kestrel asks a connection to close on shutdown, passes the request on only where a client
/// cannot lose a request to it. Kestrel alone closes a keep-alive connection that has not yet sent a
/// request at once; a client that has just finished CONNECT and TLS then sees its first request cut,
/// and Go clients (containerd, skopeo, dockerd) retry a request only on a reused connection. So:
/// <list type="bullet">
/// <item>a connection that has served a request closes now (idle: clients retry on a new connection;
/// busy: its response ends with <c>Connection: close</c>);</item>
/// <item>a connection that has not yet served one closes when its first request starts, so that
/// request is answered with <c>Connection: close</c> (or at <c>--header-timeout</c> if none comes).</item>
/// </list>
/// Installed as the connection's <see cref="IConnectionLifetimeNotificationFeature"/>, which Kestrel's HTTP
/// layer listens to; requests report to it through <see cref="RequestStarted"/>.
/// </summary>
internal sealed class DrainGate : IConnectionLifetimeNotificationFeature
{
    private readonly CancellationTokenSource _closeRequested = new();
    private readonly Lock _lock = new();
    private bool _served;
    private bool _stopping;

    private DrainGate()
    {
    }

    public CancellationToken ConnectionClosedRequested
    {
        get => _closeRequested.Token;
        set => throw new NotSupportedException("the drain gate owns its close request");
    }

    /// <summary>Puts a gate between Kestrel's close request and the connection's HTTP layer.</summary>
    public static void Attach(ConnectionContext connection)
    {
        if (connection.Features.Get<IConnectionLifetimeNotificationFeature>() is not { } kestrel)
        {
            return;
        }

        var gate = new DrainGate();
        connection.Features.Set<IConnectionLifetimeNotificationFeature>(gate);
        connection.Features.Set(gate);
        kestrel.ConnectionClosedRequested.Register(static state => ((DrainGate)state!).OnServerStopping(), gate);
    }

    /// <summary>Called as each request on the connection starts.</summary>
    public void RequestStarted()
    {
        bool close;
        lock (_lock)
        {
            close = _stopping && !_served;
            _served = true;
        }

        if (close)
        {
            RequestClose();
        }
    }

    // The source is never disposed: it has no timer, and Kestrel may read the token until the connection ends.
    public void RequestClose() => _closeRequested.Cancel();

    private void OnServerStopping()
    {
        bool close;
        lock (_lock)
        {
            _stopping = true;
            close = _served;
        }

        if (close)
        {
            RequestClose();
        }
    }
}
