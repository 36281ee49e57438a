using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// Stands in for the proxy's own endpoint: <c>GET /ca.crt</c> on 127.0.0.1 with the PEM and
/// the <c>X-Certificate-SHA256</c> header, as MitmCache serves them.
/// </summary>
public sealed class CaServerFixture : IAsyncLifetime
{
    private WebApplication? _app;

    public TempDir Dir { get; } = TempDir.Create("mitmcache-node-ca");

    public TestPki Pki { get; private set; } = null!;

    /// <summary>The PEM exactly as MitmCache exports it, with a final newline (what the script installs).</summary>
    public string CaPem { get; private set; } = "";

    /// <summary>Colon-separated uppercase hex, like the proxy's header.</summary>
    public string Fingerprint { get; private set; } = "";

    public string ProxyUrl { get; private set; } = "";

    public string ProxyHost => "127.0.0.1";

    /// <summary>The Authorization header of the last request, if it had one.</summary>
    public string? LastAuthorization { get; private set; }

    public async Task InitializeAsync()
    {
        Pki = TestPki.Create(Dir.Combine("pki"));
        CaPem = Pki.CaCertificate.ExportCertificatePem() + "\n";
        Fingerprint = FingerprintOf(Pki.CaCertificate.GetCertHash(System.Security.Cryptography.HashAlgorithmName.SHA256));
        var (app, port) = await LoopbackKestrel.StartAsync(null, 0, async context =>
        {
            LastAuthorization = context.Request.Headers.Authorization.FirstOrDefault();
            if (context.Request.Path != "/ca.crt")
            {
                context.Response.StatusCode = 404;
                return;
            }

            context.Response.ContentType = "application/x-pem-file";
            context.Response.Headers["X-Certificate-SHA256"] = Fingerprint;
            await context.Response.WriteAsync(CaPem.TrimEnd('\n'));
        }, CancellationToken.None);
        _app = app;
        ProxyUrl = $"http://{ProxyHost}:{port}";
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync();
        }

        Dir.Dispose();
    }

    public static string FingerprintOf(byte[] hash) =>
        string.Join(':', Convert.ToHexString(hash).Chunk(2).Select(pair => new string(pair)));
}
