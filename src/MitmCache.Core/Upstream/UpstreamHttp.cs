using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using MitmCache.Configuration;

namespace MitmCache.Upstream;

/// <summary>
/// The single <see cref="HttpMessageInvoker"/> used for all intercepted upstream traffic. Redirects
/// are followed by the caller (so credentials never leak across hosts), nothing is decompressed
/// (digests are over the bytes on the wire), and TCP goes through <see cref="UpstreamConnector"/>.
/// </summary>
internal static class UpstreamHttp
{
    /// <param name="health">Told of every connection made, to close them if their host goes down; null for probes.</param>
    /// <param name="reach">Who chooses the hosts this invoker connects to: clients (the registries they name), or
    /// upstreams (redirects to other hosts), which may not lead into internal networks.</param>
    /// <param name="pooled">False for probes: a new connection for every request, closed after it.</param>
    public static HttpMessageInvoker CreateInvoker(UpstreamConnector connector, ProxySettings settings, UpstreamHealth? health,
        UpstreamReach reach = UpstreamReach.Client, bool pooled = true)
    {
        var extraRoots = ExtraRoots(settings);
        HttpMessageHandler Pool(UpstreamRoute route) => CreatePool(connector, settings, health, reach, pooled, route, extraRoots);
        return new HttpMessageInvoker(connector.Tier.Enabled ? new TierHandler(connector.Tier, health, Pool) : Pool(UpstreamRoute.Direct), disposeHandler: true);
    }

    private static SocketsHttpHandler CreatePool(UpstreamConnector connector, ProxySettings settings, UpstreamHealth? health,
        UpstreamReach reach, bool pooled, UpstreamRoute route, X509Certificate2Collection extraRoots) => new()
    {
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        UseProxy = false,
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
        PooledConnectionLifetime = pooled ? TimeSpan.FromMinutes(10) : TimeSpan.Zero,
        EnableMultipleHttp2Connections = true,
        // The whole connection, TLS included: what the connector's own budget leaves out.
        ConnectTimeout = settings.ConnectTimeout,
        ConnectCallback = async (context, ct) =>
        {
            var stream = await connector.ConnectAsync(context.DnsEndPoint.Host, context.DnsEndPoint.Port, reach, route, ct);
            if (route.IsDirect && context.InitialRequestMessage.RequestUri is { } uri)
            {
                health?.TrackConnection(uri.Authority, stream);
            }
            else if (!route.IsDirect)
            {
                // Closed if the parent goes down; not if the registry is found down through it (a parent slow to
                // connect, say): the parent's other transfers, from its cache, are still good.
                health?.TrackConnection(connector.Tier.States[route.Parent].Authority, stream);
            }

            return new ReadAheadStream(stream);
        },
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                ValidateServerCertificate(certificate, chain, errors, extraRoots),
        },
    };

    /// <summary>The operator's <c>--upstream-ca</c> roots (none without it).</summary>
    public static X509Certificate2Collection ExtraRoots(ProxySettings settings)
    {
        var extraRoots = new X509Certificate2Collection();
        if (settings.UpstreamCaFile is { } file)
        {
            extraRoots.ImportFromPemFile(file);
        }

        return extraRoots;
    }

    /// <summary>System roots first; then, for chain errors only, the operator's <c>--upstream-ca</c> bundle.</summary>
    internal static bool ValidateServerCertificate(X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors, X509Certificate2Collection extraRoots)
    {
        if (errors == SslPolicyErrors.None)
        {
            return true;
        }

        if (certificate is null || extraRoots.Count == 0 || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        custom.ChainPolicy.DisableCertificateDownloads = true;
        custom.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.1")); // serverAuth
        custom.ChainPolicy.CustomTrustStore.AddRange(extraRoots);
        if (chain is not null)
        {
            foreach (var element in chain.ChainElements)
            {
                custom.ChainPolicy.ExtraStore.Add(element.Certificate);
            }
        }

        using var leaf = new X509Certificate2(certificate);
        return custom.Build(leaf);
    }
}
