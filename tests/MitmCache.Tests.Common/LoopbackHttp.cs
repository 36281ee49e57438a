using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Tests.Common;

/// <summary>
/// HttpClient for talking to fixtures directly: named hosts are dialled on 127.0.0.1 (or the address
/// given), and TLS trusts only the given CA (plus the usual host name check).
/// </summary>
public static class LoopbackHttp
{
    public static HttpClient CreateClient(
        IReadOnlyDictionary<string, int> hostToPort, X509Certificate2 trustedCa, TimeSpan? timeout = null) =>
        CreateClient(hostToPort.ToDictionary(h => h.Key, h => new IPEndPoint(IPAddress.Loopback, h.Value)), trustedCa, timeout);

    public static HttpClient CreateClient(
        IReadOnlyDictionary<string, IPEndPoint> hostToEndPoint, X509Certificate2 trustedCa, TimeSpan? timeout = null)
    {
        var endPoints = new Dictionary<string, IPEndPoint>(hostToEndPoint, StringComparer.OrdinalIgnoreCase);
        var chainPolicy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
        };
        chainPolicy.CustomTrustStore.Add(trustedCa);

        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            SslOptions = new SslClientAuthenticationOptions { CertificateChainPolicy = chainPolicy },
            ConnectCallback = async (context, ct) =>
            {
                var host = context.DnsEndPoint.Host;
                if (!endPoints.TryGetValue(host, out var endPoint))
                {
                    throw new HttpRequestException($"LoopbackHttp: host '{host}' is not mapped to a loopback port.");
                }

                var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(endPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };

        return new HttpClient(handler) { Timeout = timeout ?? TimeSpan.FromSeconds(60) };
    }
}
