using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace MitmCache.Tests.Common;

/// <summary>
/// An upstream that accepts TCP connections and never answers: no TLS handshake, no byte, no close.
/// What a wedged server or a load balancer in front of a dead pool looks like. Counts what it accepted.
/// </summary>
public sealed class HangingServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly ConcurrentBag<Socket> _accepted = [];
    private readonly Task _accepting;

    private HangingServer(TcpListener listener)
    {
        _listener = listener;
        _accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Accepted => _accepted.Count;

    /// <summary>Listens on 127.0.0.1:<paramref name="port"/> (say, the port of a server just killed).</summary>
    public static HangingServer Start(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        return new HangingServer(listener);
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                _accepted.Add(await _listener.AcceptSocketAsync());
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    public async ValueTask DisposeAsync()
    {
        _listener.Stop();
        await _accepting;
        foreach (var socket in _accepted)
        {
            socket.Dispose();
        }
    }
}
