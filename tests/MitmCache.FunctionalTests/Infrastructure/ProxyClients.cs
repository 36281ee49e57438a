using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>HttpClients that go through the proxy like any HTTPS_PROXY user, trusting only its root.</summary>
public static class ProxyClients
{
    /// <param name="observedIssuer">Receives the issuer of each server certificate seen.</param>
    public static HttpClient Create(ProxyUnderTest proxy, Action<X509Certificate2>? observeCertificate = null, Version? version = null) =>
        Create(proxy.Url, proxy.CaBundlePath, observeCertificate, version);

    public static HttpClient Create(string proxyUrl, string caBundlePath, Action<X509Certificate2>? observeCertificate = null, Version? version = null)
    {
        var root = X509CertificateLoader.LoadCertificateFromFile(caBundlePath);
        var handler = new SocketsHttpHandler
        {
            Proxy = new WebProxy(proxyUrl),
            UseProxy = true,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
                {
                    if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != 0)
                    {
                        return false;
                    }

                    var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
                    observeCertificate?.Invoke(leaf);
                    using var chain = new X509Chain();
                    chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                    chain.ChainPolicy.CustomTrustStore.Add(root);
                    chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                    return chain.Build(leaf);
                },
            },
        };

        var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        if (version is not null)
        {
            client.DefaultRequestVersion = version;
            client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }

        return client;
    }
}
