using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Http;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Proxy;

/// <summary>The proxy core against a real TLS registry on loopback, with curl and HttpClient.</summary>
public sealed class ProxyCoreTests(AnonymousWorldFixture fixture) : IClassFixture<AnonymousWorldFixture>
{
    private RegistryWorld World => fixture.World;

    [Fact]
    public async Task Curl_InterceptedRegistry_ChainsToProxyRootAndReachesUpstream()
    {
        var result = await Curl.RunAsync("-sS", "-v", "-x", World.Proxy.Url, "--cacert", World.Proxy.CaBundlePath,
            $"https://{World.Authority}/v2/");

        Assert.True(result.ExitCode == 0, result.StdErr);
        Assert.Contains("issuer: O=MitmCache", result.StdErr, StringComparison.Ordinal);
        Assert.Contains($"subjectAltName: host \"{Hosts.Registry}\" matched", result.StdErr, StringComparison.Ordinal);
        Assert.Equal("{}", result.StdOut.Trim());
    }

    [Fact]
    public async Task Curl_Http2InsideTunnel_Negotiated()
    {
        var result = await Curl.RunAsync("-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
            "-x", World.Proxy.Url, "--cacert", World.Proxy.CaBundlePath, $"https://{World.Authority}/v2/");

        Assert.True(result.ExitCode == 0, result.StdErr);
        Assert.Equal("2 200", result.StdOut.Trim());
    }

    [Fact]
    public async Task HttpClient_Intercepted_LeafIssuedByRootForHost()
    {
        X509Certificate2? seen = null;
        using var client = ProxyClients.Create(World.Proxy, c => seen = c);

        using var response = await client.GetAsync($"https://{World.Authority}/v2/");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotNull(seen);
        Assert.Contains("MitmCache Root CA", seen!.Issuer, StringComparison.Ordinal);
        Assert.Equal(Hosts.Registry, seen.GetNameInfo(X509NameType.DnsName, forIssuer: false));
        Assert.True(seen.GetECDsaPublicKey() is not null, "leaves are ECDSA");
    }

    [Fact]
    public async Task TunnelledHost_PresentsUpstreamCertificateUntouched()
    {
        // A host that is not intercepted: its own certificate (from the test CA) must come through.
        var certificate = World.Pki.IssueServerCertificate("tunnel.test");
        var (app, port) = await LoopbackKestrel.StartAsync(certificate, 0, c => c.Response.WriteAsync("tunnelled"), CancellationToken.None);
        await using var _ = app;
        await using var proxy = await ProxyUnderTest.StartAsync(World.DefaultProxySettings() with
        {
            DataDirectory = World.Dir.Combine($"proxy-{Guid.NewGuid():N}"),
            AllowedPorts = new HashSet<int> { 443, port },
            ConnectTo = [new("tunnel.test", port, "127.0.0.1", port)],
        });

        var result = await Curl.RunAsync("-sS", "-v", "-x", proxy.Url, "--cacert", World.Pki.CaCertPath, $"https://tunnel.test:{port}/");

        Assert.True(result.ExitCode == 0, result.StdErr);
        Assert.Equal("tunnelled", result.StdOut);
        Assert.Contains($"issuer: {World.Pki.CaCertificate.Subject}", result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("O=MitmCache", result.StdErr, StringComparison.Ordinal);
        Assert.Contains(proxy.Log.Lines, l => l.Contains("Tunnel", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("169.254.169.254:443", 403)]
    [InlineData("[fd00:ec2::254]:443", 403)]
    [InlineData("registry.test:22", 403)]
    [InlineData("registry.test", 400)]
    [InlineData("user@registry.test:443", 400)]
    [InlineData("registry.test:notaport", 400)]
    [InlineData("unresolvable.invalid:443", 502)]
    public async Task Connect_RefusedOrBroken_ClearStatusAndProxyStaysUp(string target, int status)
    {
        var answer = await RawAsync($"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");

        Assert.StartsWith($"HTTP/1.1 {status} ", answer, StringComparison.Ordinal);
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task Connect_Garbage_400ThenNextConnectionWorks()
    {
        var answer = await RawAsync("CONNECT \0\0\0 HTTP/1.1\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 400 ", answer, StringComparison.Ordinal);
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task InterceptedHost_UpstreamDown_502InsideTunnel()
    {
        var closed = FreePort.Get();
        await using var proxy = await ProxyUnderTest.StartAsync(World.DefaultProxySettings() with
        {
            DataDirectory = World.Dir.Combine($"proxy-{Guid.NewGuid():N}"),
            AllowedPorts = new HashSet<int> { 443, closed },
            ConnectTo = [new(Hosts.Registry, closed, "127.0.0.1", closed)],
        });

        var result = await Curl.RunAsync("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.Url, "--cacert", proxy.CaBundlePath,
            $"https://{Hosts.Registry}:{closed}/some/path");

        Assert.Equal("502", result.StdOut.Trim());
    }

    [Fact]
    public async Task PlainHttp_AbsoluteForm_Forwarded()
    {
        var (app, port) = await LoopbackKestrel.StartAsync(null, 0, c => c.Response.WriteAsync($"plain {c.Request.Path}{c.Request.QueryString}"), CancellationToken.None);
        await using var _ = app;
        await using var proxy = await ProxyUnderTest.StartAsync(World.DefaultProxySettings() with
        {
            DataDirectory = World.Dir.Combine($"proxy-{Guid.NewGuid():N}"),
            AllowedPorts = new HashSet<int> { 443, port },
            ConnectTo = [new("plain.test", port, "127.0.0.1", port)],
        });

        var result = await Curl.RunAsync("-sS", "-x", proxy.Url, $"http://plain.test:{port}/hello?x=1");

        Assert.True(result.ExitCode == 0, result.StdErr);
        Assert.Equal("plain /hello?x=1", result.StdOut);
    }

    [Fact]
    public async Task PlainHttp_MetadataAddress_Refused()
    {
        var result = await Curl.RunAsync("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", World.Proxy.Url, "http://169.254.169.254/latest/meta-data/");

        Assert.Equal("403", result.StdOut.Trim());
    }

    [Fact]
    public async Task ProxyAuth_Required_407WithoutAnd200With()
    {
        await using var proxy = await ProxyUnderTest.StartAsync(World.DefaultProxySettings() with
        {
            DataDirectory = World.Dir.Combine($"proxy-{Guid.NewGuid():N}"),
            ProxyAuth = "node:s3cret-pass",
        });
        var url = $"https://{World.Authority}/v2/";

        var without = await Curl.RunAsync("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.Url, "--cacert", proxy.CaBundlePath, url);
        var wrong = await Curl.RunAsync("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.Url, "--proxy-user", "node:nope", "--cacert", proxy.CaBundlePath, url);
        var right = await Curl.RunAsync("-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.Url, "--proxy-user", "node:s3cret-pass", "--cacert", proxy.CaBundlePath, url);

        Assert.Contains("407", without.StdOut + without.StdErr, StringComparison.Ordinal);
        Assert.Contains("407", wrong.StdOut + wrong.StdErr, StringComparison.Ordinal);
        Assert.Equal("200", right.StdOut.Trim());
        Assert.DoesNotContain("s3cret-pass", proxy.Log.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OwnEndpoints_HealthAndCaCertificate()
    {
        using var http = new HttpClient();

        var health = await http.GetStringAsync($"{World.Proxy.Url}/healthz");
        var ready = await http.GetAsync($"{World.Proxy.Url}/readyz");
        var pem = await http.GetStringAsync($"{World.Proxy.Url}/ca.crt");

        Assert.Equal("ok\n", health);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(await File.ReadAllTextAsync(World.Proxy.CaBundlePath), pem);
    }

    [Fact]
    public async Task TlsClientHelloOnPlainPort_RejectedAndProxyStaysUp()
    {
        // A TLS client that forgot the proxy: its ClientHello lands on the plain port.
        var result = await Curl.RunAsync("-sS", "-m", "10", "--cacert", World.Proxy.CaBundlePath, $"https://127.0.0.1:{World.Proxy.Port}/");

        Assert.NotEqual(0, result.ExitCode);
        await AssertHealthyAsync();
    }

    private async Task<string> RawAsync(string request)
    {
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, World.Proxy.Port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        var buffer = new byte[4096];
        var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        return Encoding.Latin1.GetString(buffer, 0, read);
    }

    private async Task AssertHealthyAsync()
    {
        using var http = new HttpClient();
        Assert.Equal("ok\n", await http.GetStringAsync($"{World.Proxy.Url}/healthz"));
    }
}
