using System.Net;
using System.Net.Sockets;
using System.Text;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Observability;

/// <summary><c>--metrics-listen</c>: a scraper's port that answers health and metrics and is no proxy.</summary>
public sealed class MonitoringListenerTests
{
    [Fact]
    public async Task MetricsListen_ServesMetricsHealthAndReadiness_AndNothingElse()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false,
            s => s with { MetricsListen = new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0) });
        await world.PushImageAsync("library/scraped", "v1", (50_000, 63));
        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/library/scraped:v1", world.Dir.Combine("oci"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
        Assert.True(await world.Proxy.Log.WaitForAsync(
            l => l.Contains("\"Kind\":\"blob\"", StringComparison.Ordinal) && l.Contains("\"Result\":\"miss\"", StringComparison.Ordinal), count: 2),
            world.Proxy.Log.Tail());
        var monitoring = world.Proxy.MetricsUrl!;
        Assert.Equal("127.0.0.2", monitoring.Host);
        Assert.NotEqual(world.Proxy.Port, monitoring.Port);

        using var http = new HttpClient { BaseAddress = monitoring };
        var metrics = PrometheusText.Parse(await http.GetStringAsync("/metrics"));
        Assert.Equal(2, metrics.Value("mitmcache_requests_total", ("registry", world.Authority), ("kind", "blob"), ("result", "miss")));
        Assert.Equal("ok\n", await http.GetStringAsync("/healthz"));
        Assert.Equal("ready\n", await http.GetStringAsync("/readyz"));

        // Not the CA, not the admin calls (those stay on the proxy port, loopback only).
        foreach (var path in new[] { "/ca.crt", "/admin/cache/stats", "/" })
        {
            using var response = await http.GetAsync(path);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var revoke = await http.PostAsync("/admin/auth/revoke?registry=x", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, revoke.StatusCode);
        }

        // Not a proxy, in either form: an absolute-form GET is not forwarded, a CONNECT is not tunnelled.
        using (var asProxy = new HttpClient(new SocketsHttpHandler { Proxy = new WebProxy(monitoring), UseProxy = true }))
        using (var forwarded = await asProxy.GetAsync($"http://{world.Authority}/v2/"))
        {
            Assert.Equal(HttpStatusCode.NotFound, forwarded.StatusCode);
        }

        Assert.StartsWith("HTTP/1.1 404", await RawExchangeAsync(monitoring, $"CONNECT {world.Authority} HTTP/1.1\r\nHost: {world.Authority}\r\n\r\n"), StringComparison.Ordinal);
        Assert.Equal(2, await world.Registry.WaitForRequestsAsync("GET", "/blobs/", 2)); // the skopeo pull's layer and config, nothing since
    }

    private static async Task<string> RawExchangeAsync(Uri endpoint, string request)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(endpoint.Host, endpoint.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request));
        var buffer = new byte[4096];
        var read = await stream.ReadAsync(buffer);
        return Encoding.ASCII.GetString(buffer, 0, read);
    }
}
