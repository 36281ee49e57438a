using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tunneling;
using Xunit.Abstractions;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>Slow clients, too many clients and idle tunnels: the proxy stays available and frees what they hold.</summary>
public sealed class ResourceLimitTests(ITestOutputHelper output)
{
    private static readonly IPAddress s_clientA = IPAddress.Parse("127.0.0.1");
    private static readonly IPAddress s_clientB = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress s_clientC = IPAddress.Parse("127.0.0.3");

    [Fact]
    public async Task Slowloris_500ConnectionsOneByteASecond_OthersServedQuicklyAndAllClosedByTimeouts()
    {
        var headerTimeout = TimeSpan.FromSeconds(4);
        await using var world = await LoopbackWorld.StartAsync(s => s with { HeaderTimeout = headerTimeout });
        var digest = world.Registry.Add(Encoding.ASCII.GetBytes("a small blob, served while under attack"));
        var limiter = world.Proxy.Get<ConnectionLimiter>();
        var registry = world.Registry.Authority;
        Assert.Equal(200, await GetStatusAsync(ProxyClients.Create(world.Proxy), $"https://{registry}/v2/team/app/blobs/{digest}")); // warm: leaf minted, blob cached

        // Three kinds of slow head: CONNECT (our head timeout), plain HTTP (Kestrel's header timeout),
        // and HTTP inside an intercepted tunnel (Kestrel's header timeout, behind TLS).
        const int Attackers = 500;
        var attackers = new List<Task<TimeSpan?>>();
        var started = 0;
        var allStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Started()
        {
            if (Interlocked.Increment(ref started) == Attackers)
            {
                allStarted.SetResult();
            }
        }

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        for (var i = 0; i < Attackers; i++)
        {
            var (kind, head) = (i % 5) switch
            {
                0 or 1 => ("connect", $"CONNECT {registry} HTTP/1.1\r\nHost: {registry}\r\nX-Slow: {new string('a', 100)}"),
                2 or 3 => ("plain", $"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: {new string('a', 100)}"),
                _ => ("tunnel", $"GET /v2/ HTTP/1.1\r\nHost: {registry}\r\nX-Slow: {new string('a', 100)}"),
            };
            attackers.Add(DripAsync(world.Proxy.Port, kind == "tunnel" ? registry : null, Encoding.ASCII.GetBytes(head), Started, stop.Token));
        }

        await allStarted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var open = limiter.Open;

        // While they drip, ordinary clients keep coming, each on a new connection.
        var latencies = new List<(string What, TimeSpan Took, int Status)>();
        var attack = Stopwatch.StartNew();
        while (attack.Elapsed < headerTimeout - TimeSpan.FromSeconds(1))
        {
            latencies.Add(await TimeAsync("healthz", () => GetStatusAsync(new HttpClient(), $"{world.Proxy.Url}/healthz")));
            latencies.Add(await TimeAsync("blob via tunnel", () => GetStatusAsync(ProxyClients.Create(world.Proxy),
                $"https://{registry}/v2/team/app/blobs/{digest}")));
            await Task.Delay(100);
        }

        var closedAfter = await Task.WhenAll(attackers);
        output.WriteLine($"attack connections: {attackers.Count} ({open} open when all had started); closed after (s): min {closedAfter.Min(t => t?.TotalSeconds):F1}, max {closedAfter.Max(t => t?.TotalSeconds):F1}");
        output.WriteLine($"normal requests during the attack: {latencies.Count}, slowest {latencies.Max(l => l.Took.TotalMilliseconds):F0} ms, " +
            $"median {latencies.Select(l => l.Took.TotalMilliseconds).Order().ElementAt(latencies.Count / 2):F0} ms");
        Assert.All(latencies, l => Assert.True(l.Status == 200 && l.Took < TimeSpan.FromSeconds(2), $"{l.What}: {l.Status} in {l.Took}"));
        Assert.All(closedAfter, t => Assert.True(t is not null && t < headerTimeout + TimeSpan.FromSeconds(5), $"closed after {t?.ToString() ?? "never"}"));
        await Poll.UntilAsync(() => limiter.Open == 0, TimeSpan.FromSeconds(5));
        Assert.Equal(0, limiter.Open);
    }

    [Fact]
    public async Task ConnectionCaps_PerClientThenTotal_503WithReason_AdmittedAgainAfterRelease()
    {
        await using var world = await LoopbackWorld.StartAsync(s => s with { MaxConnections = 6, MaxConnectionsPerClient = 3, HeaderTimeout = TimeSpan.FromSeconds(60) });
        var limiter = world.Proxy.Get<ConnectionLimiter>();
        var port = world.Proxy.Port;
        var held = new List<RawProxyConnection>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                held.Add(await RawProxyConnection.OpenAsync(port, s_clientA));
            }

            await Poll.UntilAsync(() => limiter.OpenFrom(s_clientA) == 3, TimeSpan.FromSeconds(5));
            var perClient = await RefusalAsync(port, s_clientA);

            for (var i = 0; i < 3; i++)
            {
                held.Add(await RawProxyConnection.OpenAsync(port, s_clientB));
            }

            await Poll.UntilAsync(() => limiter.Open == 6, TimeSpan.FromSeconds(5));
            var total = await RefusalAsync(port, s_clientC);

            Assert.Equal(503, perClient.Status);
            Assert.Contains("too many connections from 127.0.0.1 (--max-connections-per-client 3)", perClient.BodyText, StringComparison.Ordinal);
            Assert.Equal("1", perClient.Header("Retry-After"));
            Assert.Equal(503, total.Status);
            Assert.Contains("too many connections (--max-connections 6)", total.BodyText, StringComparison.Ordinal);

            // A slot comes back when a connection ends.
            await held[0].DisposeAsync();
            held.RemoveAt(0);
            await Poll.UntilAsync(() => limiter.Open == 5, TimeSpan.FromSeconds(5));
            await using var admitted = await RawProxyConnection.OpenAsync(port, s_clientC);
            var health = await admitted.RoundTripAsync("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", TimeSpan.FromSeconds(10));
            var metrics = await admitted.RoundTripAsync("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", TimeSpan.FromSeconds(10));

            Assert.Equal(200, health?.Status);
            Assert.Contains("mitmcache_client_connections 6\n", metrics!.BodyText, StringComparison.Ordinal);
            Assert.Contains("mitmcache_client_connections_rejected_total{limit=\"total\"} 1\n", metrics.BodyText, StringComparison.Ordinal);
            Assert.Contains("mitmcache_client_connections_rejected_total{limit=\"per_client\"} 1\n", metrics.BodyText, StringComparison.Ordinal);
            Assert.True(world.Proxy.Log.Lines.Any(l => l.Contains("Refused a connection", StringComparison.Ordinal) && l.Contains("too many connections from 127.0.0.1", StringComparison.Ordinal)), world.Proxy.Log.Tail());
        }
        finally
        {
            foreach (var connection in held)
            {
                await connection.DisposeAsync();
            }
        }

        await Poll.UntilAsync(() => limiter.Open == 0, TimeSpan.FromSeconds(5));
        Assert.Equal(0, limiter.OpenFrom(s_clientA));
    }

    [Fact]
    public async Task BlindTunnel_SilentForIdleTimeout_Closed_WhileTrafficKeepsItOpen()
    {
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var echoPort = ((IPEndPoint)echo.LocalEndpoint).Port;
        _ = EchoAsync(echo);
        var idle = TimeSpan.FromSeconds(2);
        await using var world = await LoopbackWorld.StartAsync(s => s with
        {
            TunnelIdleTimeout = idle,
            AllowedPorts = new HashSet<int>(s.AllowedPorts) { echoPort },
            ConnectTo = [new("echo.test", echoPort, "127.0.0.1", echoPort), .. s.ConnectTo],
        });
        await using var tunnel = await RawProxyConnection.OpenAsync(world.Proxy.Port);
        var established = await tunnel.RoundTripAsync($"CONNECT echo.test:{echoPort} HTTP/1.1\r\nHost: echo.test:{echoPort}\r\n\r\n", TimeSpan.FromSeconds(10));
        Assert.Equal(200, established?.Status);

        // Traffic for longer than the idle timeout, a byte every fifth of it: the tunnel stays.
        var one = new byte[1];
        var silence = new Stopwatch();
        for (var i = 0; i < 8; i++)
        {
            await tunnel.SendAsync([(byte)('a' + i)]);
            await tunnel.Stream.ReadExactlyAsync(one);
            silence.Restart();
            Assert.Equal((byte)('a' + i), one[0]);
            await Task.Delay(idle / 5);
        }

        Assert.True(await tunnel.WaitForCloseAsync(TimeSpan.FromSeconds(10)), "the idle tunnel stayed open");
        Assert.InRange(silence.Elapsed, idle * 0.5, idle + TimeSpan.FromSeconds(3));
        Assert.True(await world.Proxy.Log.WaitForAsync(l => l.Contains($"echo.test:{echoPort}", StringComparison.Ordinal) && l.Contains("without traffic", StringComparison.Ordinal)),
            world.Proxy.Log.Tail()); // logged just after the client sees the close
    }

    /// <summary>Sends the head one byte a second until the proxy closes the connection; returns how long it held on.</summary>
    private static async Task<TimeSpan?> DripAsync(int proxyPort, string? interceptAuthority, byte[] head, Action started, CancellationToken cancellationToken)
    {
        await using var connection = interceptAuthority is null
            ? await RawProxyConnection.OpenAsync(proxyPort, cancellationToken: cancellationToken)
            : await RawProxyConnection.OpenInterceptedAsync(proxyPort, interceptAuthority, cancellationToken);
        var clock = Stopwatch.StartNew();
        var closed = connection.WaitForCloseAsync(TimeSpan.FromSeconds(25));
        for (var i = 0; i < head.Length; i++)
        {
            if (i > 0 && await Task.WhenAny(closed, Task.Delay(1000, cancellationToken)) == closed)
            {
                break;
            }

            try
            {
                await connection.SendAsync(head[i..(i + 1)], cancellationToken);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
            {
                break;
            }

            if (i == 0)
            {
                started();
            }
        }

        return await closed ? clock.Elapsed : null;
    }

    private static async Task<RawResponse> RefusalAsync(int port, IPAddress source)
    {
        await using var connection = await RawProxyConnection.OpenAsync(port, source);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var response = await connection.Reader.ReadAsync(headRequest: false, cancel.Token);
        Assert.NotNull(response);
        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(5)), "a refused connection must be closed");
        return response;
    }

    private static async Task<int> GetStatusAsync(HttpClient client, string url)
    {
        using (client)
        {
            using var response = await client.GetAsync(url);
            await response.Content.ReadAsByteArrayAsync();
            return (int)response.StatusCode;
        }
    }

    private static async Task<(string, TimeSpan, int)> TimeAsync(string what, Func<Task<int>> request)
    {
        var clock = Stopwatch.StartNew();
        var status = await request();
        return (what, clock.Elapsed, status);
    }

    private static async Task EchoAsync(TcpListener listener)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync();
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (socket)
                {
                    var buffer = new byte[4096];
                    try
                    {
                        int read;
                        while ((read = await socket.ReceiveAsync(buffer)) > 0)
                        {
                            await socket.SendAsync(buffer.AsMemory(0, read));
                        }
                    }
                    catch (SocketException)
                    {
                    }
                }
            });
        }
    }
}
