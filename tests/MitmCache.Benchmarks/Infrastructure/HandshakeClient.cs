using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>What one request of a handshake run does.</summary>
/// <param name="ProxyPort">When set: connect here and <c>CONNECT host:port</c> first; else connect to <paramref name="ServerPort"/>.</param>
/// <param name="Host">The name for CONNECT, SNI and Host; <c>{0}</c> is replaced by the request number.</param>
/// <param name="Path">The small GET; null for a handshake only (close after TLS).</param>
/// <param name="Resume">Offer the session ticket of an earlier connection to the same host (TLS resumption), as Go clients and containerd do.</param>
internal sealed record HandshakeRequest(int? ProxyPort, int ServerPort, string Host, string? Path, X509Certificate2 TrustedRoot, bool Resume = false);

/// <summary>
/// A raw client for the handshake benchmark: a new TCP connection per request, optionally CONNECT through
/// the proxy, a TLS handshake (full unless <see cref="HandshakeRequest.Resume"/>), then optionally one small
/// HTTP/1.1 GET read to the end. A fixed number of requests, a few at a time.
/// </summary>
internal static class HandshakeClient
{
    /// <returns>Requests per second.</returns>
    public static async Task<double> RunAsync(HandshakeRequest request, int first, int count, int concurrency)
    {
        var next = first - 1;
        var end = first + count;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < end)
            {
                await OneAsync(request, i);
            }
        }));
        return count / clock.Elapsed.TotalSeconds;
    }

    private static async Task OneAsync(HandshakeRequest request, int number)
    {
        var host = string.Format(System.Globalization.CultureInfo.InvariantCulture, request.Host, number);
        var authority = $"{host}:{request.ServerPort}";
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, request.ProxyPort ?? request.ServerPort));
        await using var network = new NetworkStream(socket, ownsSocket: false);
        if (request.ProxyPort is not null)
        {
            await network.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"));
            var head = await ReadHeadAsync(network);
            if (!head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"CONNECT {authority}: {head.Split('\r')[0]}");
            }
        }

        var policy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, RevocationMode = X509RevocationMode.NoCheck };
        policy.CustomTrustStore.Add(request.TrustedRoot);
        await using var tls = new SslStream(network, leaveInnerStreamOpen: true);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = host,
            AllowTlsResume = request.Resume,
            CertificateChainPolicy = policy,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
        });

        if (request.Path is null)
        {
            return;
        }

        await tls.WriteAsync(Encoding.ASCII.GetBytes($"GET {request.Path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"));
        var buffer = new byte[16 * 1024];
        var total = 0;
        var status = "";
        int read;
        while ((read = await tls.ReadAsync(buffer.AsMemory())) > 0)
        {
            if (total == 0)
            {
                status = Encoding.ASCII.GetString(buffer, 0, Math.Min(read, 12));
            }

            total += read;
        }

        if (!status.StartsWith("HTTP/1.1 200", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"GET https://{authority}{request.Path}: '{status}' ({total} bytes)");
        }
    }

    private static async Task<string> ReadHeadAsync(Stream stream)
    {
        // Byte by byte: the TLS handshake follows on the same stream, so nothing past the head may be read.
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && head.Length < 4096)
        {
            if (await stream.ReadAsync(one) == 0)
            {
                break;
            }

            head.Append((char)one[0]);
        }

        return head.ToString();
    }
}
