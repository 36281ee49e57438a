using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// A hand-driven connection to the proxy port: raw bytes in, raw responses out, optionally from a
/// chosen loopback source address (127.0.0.2 is another client as far as the proxy can tell), and
/// optionally through CONNECT and TLS into an intercepted host, where the caller then speaks raw HTTP.
/// </summary>
public sealed class RawProxyConnection : IAsyncDisposable
{
    private readonly Socket _socket;

    private RawProxyConnection(Socket socket, Stream stream)
    {
        _socket = socket;
        Stream = stream;
        Reader = new HttpResponseReader(stream);
    }

    /// <summary>The socket stream, or the TLS stream inside the tunnel after <see cref="InterceptAsync"/>.</summary>
    public Stream Stream { get; private set; }

    public HttpResponseReader Reader { get; private set; }

    public static async Task<RawProxyConnection> OpenAsync(int proxyPort, IPAddress? source = null, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null)
            {
                socket.Bind(new IPEndPoint(source, 0));
            }

            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, proxyPort), cancellationToken);
            return new RawProxyConnection(socket, new NetworkStream(socket, ownsSocket: false));
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>CONNECT to an intercepted <paramref name="authority"/>, then TLS with ALPN http/1.1 (the leaf is not checked here).</summary>
    public static async Task<RawProxyConnection> OpenInterceptedAsync(int proxyPort, string authority, CancellationToken cancellationToken = default)
    {
        var connection = await OpenAsync(proxyPort, cancellationToken: cancellationToken);
        try
        {
            await connection.SendAsync($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n", cancellationToken);
            var established = await connection.Reader.ReadAsync(headRequest: false, cancellationToken);
            if (established?.Status != 200)
            {
                throw new InvalidOperationException($"CONNECT {authority} answered {established}");
            }

            await connection.InterceptAsync(authority.Split(':')[0], cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts TLS inside an established tunnel.</summary>
    public async Task InterceptAsync(string host, CancellationToken cancellationToken)
    {
        var tls = new SslStream(Stream, leaveInnerStreamOpen: false);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = host,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }, cancellationToken);
        Stream = tls;
        Reader = new HttpResponseReader(tls);
    }

    public Task SendAsync(string text, CancellationToken cancellationToken = default) => SendAsync(Encoding.Latin1.GetBytes(text), cancellationToken);

    public async Task SendAsync(byte[] bytes, CancellationToken cancellationToken = default)
    {
        await Stream.WriteAsync(bytes, cancellationToken);
        await Stream.FlushAsync(cancellationToken);
    }

    /// <summary>Half-closes: the proxy sees the end of the request bytes (a FIN, or TLS close_notify) and can still answer.</summary>
    public async Task EndSendingAsync()
    {
        if (Stream is SslStream tls)
        {
            await tls.ShutdownAsync();
        }
        else
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
    }

    /// <summary>Sends a request and reads its response; null when the proxy closed the connection without one.</summary>
    public async Task<RawResponse?> RoundTripAsync(string request, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await SendAsync(request, cancel.Token);
        return await Reader.ReadAsync(request.StartsWith("HEAD ", StringComparison.Ordinal), cancel.Token);
    }

    /// <summary>Waits until the proxy closes the connection (EOF or reset), discarding whatever it sends; false on timeout.</summary>
    public async Task<bool> WaitForCloseAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        try
        {
            while (await Stream.ReadAsync(buffer, cancel.Token) > 0)
            {
            }

            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        _socket.Dispose();
    }
}
