using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.Tests.Common;

/// <summary>
/// HttpClient for talking to fixtures directly: named hosts are dialled on 127.0.0.1,
/// and TLS trusts only the given CA (plus the usual host name check).
/// </summary>
public static class LoopbackHttp
{
    public static HttpClient CreateClient(
        IReadOnlyDictionary<string, int> hostToPort, X509Certificate2 trustedCa, TimeSpan? timeout = null)
    {
        var ports = new Dictionary<string, int>(hostToPort, StringComparer.OrdinalIgnoreCase);
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
                if (!ports.TryGetValue(host, out var port))
                {
                    throw new HttpRequestException($"LoopbackHttp: host '{host}' is not mapped to a loopback port.");
                }

                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
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
