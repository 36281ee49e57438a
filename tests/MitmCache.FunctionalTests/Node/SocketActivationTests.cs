using System.Globalization;
using System.Net;
using System.Runtime.Versioning;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// <c>mitmcache run</c> given its sockets as systemd gives them (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES),
/// by systemd's own <c>systemd-socket-activate</c>, which binds them and execs the proxy on the first
/// connection. No systemd boot needed: the unit and the watchdog are covered by <see cref="NodeServiceTests"/>.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class SocketActivationTests
{
    private const string Activate = "/usr/bin/systemd-socket-activate";

    [RequiresExecutableFact(Activate, "systemd")]
    public async Task InheritedSockets_ProxyServed_MetricsSocketByName_NothingBoundByTheProxy()
    {
        using var dir = TempDir.Create("mitmcache-activate");
        int proxyPort = FreePort.Get(), metricsPort = FreePort.Get(), unusedListen = FreePort.Get();
        using var proxy = await StartAsync(["-l", $"127.0.0.1:{proxyPort}", "-l", $"127.0.0.1:{metricsPort}", "--fdname=proxy:metrics"],
            ["--data", dir.Combine("data"), "--listen", $"127.0.0.1:{unusedListen}"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };

        Assert.Equal("ready\n", await http.GetStringAsync($"http://127.0.0.1:{proxyPort}/readyz")); // the first connection execs the proxy
        using (var metrics = await http.GetAsync($"http://127.0.0.1:{metricsPort}/metrics"))
        {
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        }

        using (var ca = await http.GetAsync($"http://127.0.0.1:{metricsPort}/ca.crt"))
        {
            Assert.Equal(HttpStatusCode.NotFound, ca.StatusCode); // the metrics socket is the monitoring listener
        }

        Assert.True(await Poll.UntilAsync(() => proxy.DescribeOutput().Contains($"listening on 127.0.0.1:{proxyPort} (socket from systemd)", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10)), proxy.DescribeOutput());
        await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync($"http://127.0.0.1:{unusedListen}/healthz")); // --listen was not bound
    }

    [RequiresExecutableFact(Activate, "systemd")]
    public async Task InheritedSocketOnAllAddresses_NoAllowClient_RefusedAsOpenProxy_Exit2()
    {
        using var dir = TempDir.Create("mitmcache-activate");
        var port = FreePort.Get();
        using var proxy = await StartAsync(["-l", $"0.0.0.0:{port}"], ["--data", dir.Combine("data")]);

        using (var client = new System.Net.Sockets.TcpClient())
        {
            await client.ConnectAsync(IPAddress.Loopback, port); // execs the proxy
        }

        Assert.True(await proxy.WaitForExitAsync(TimeSpan.FromSeconds(60)), proxy.DescribeOutput()); // and its last lines read
        Assert.Equal(2, proxy.ExitCode);
        Assert.Contains($"--listen 0.0.0.0:{port}: refusing to run an open proxy", proxy.DescribeOutput(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.Combine("data", "ca"))); // checked before anything was created
    }

    /// <summary>Starts systemd-socket-activate and waits until it has bound its last socket (it then waits for a connection).</summary>
    private static async Task<BackgroundProcess> StartAsync(string[] sockets, string[] arguments)
    {
        var process = BackgroundProcess.Start(Activate, [.. sockets, "dotnet", MitmCacheCli.EntryPoint, "run", .. arguments],
            new Dictionary<string, string?> { ["MITMCACHE_LISTEN"] = null, ["MITMCACHE_DATA"] = null });
        var last = sockets[Array.LastIndexOf(sockets, "-l") + 1];
        Assert.True(await Poll.UntilAsync(() => process.DescribeOutput().Contains($"Listening on {last} as", StringComparison.Ordinal), TimeSpan.FromSeconds(30)),
            process.DescribeOutput());
        return process;
    }
}
