using System.Diagnostics;
using System.Globalization;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 11. A cached 10-layer image pulled with skopeo and ctr while its registry is up, refused (killed: connections
/// refused at once) and blackholed (every packet to its port dropped, by iptables inside the private network
/// namespace the registry runs in, so no RST and no ICMP: the outage that hangs). Each state twice: the first
/// pull, which finds out, and a later one. Then how long after the packets flow again tags go upstream again.
/// </summary>
internal static class OutageScenario
{
    private const string Repository = "bench/outage";
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        await using var network = await NetworkNamespace.CreateAsync();
        await using var registry = await RegistryServer.StartAsync(world.Pki, world.Dir.Combine("outage-registry"), new RegistryOptions { Network = network }, CancellationToken.None);
        var layerSize = world.Options.Quick ? 1 << 20 : 10 << 20;
        var builder = new OciImageBuilder();
        for (var i = 0; i < 10; i++)
        {
            builder.AddLayer(layerSize, seed: 2000 + i);
        }

        var image = builder.Build();
        using (var http = registry.CreateClient(TimeSpan.FromMinutes(5)))
        {
            await new RegistryPusher(http, registry.Authority).PushAsync(Repository, "latest", image, CancellationToken.None);
        }

        var reference = $"{registry.Authority}/{Repository}:latest";
        var port = registry.Port.ToString(CultureInfo.InvariantCulture);
        var proxy = await ProxyRunner.StartAsync(world.Options.ProxyDll, world.Dir.Combine("proxy-outage"),
        [
            "--no-default-intercept", "--intercept", Hosts.Registry, "--allow-port", port, "--upstream-ca", world.Pki.CaCertPath,
            "--connect-to", $"{Hosts.Registry}:{port}:{network.Address}:{port}",
            "--connect-timeout", $"{ConnectTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s",
        ]);
        try
        {
            await PullAsync(world, "skopeo", reference, proxy); // warms the cache
            var label = $"11 outage, cached image 10 layers {image.Layers.Sum(l => (long)l.Bytes.Length) >> 20} MiB";
            foreach (var client in new[] { "skopeo", "ctr" })
            {
                List<double> up = [], refusedFirst = [], refused = [], blackholedFirst = [], blackholed = [], recovery = [];
                for (var rep = 0; rep < world.Options.Repetitions; rep++)
                {
                    up.Add(await PullAsync(world, client, reference, proxy));

                    registry.Kill();
                    refusedFirst.Add(await PullAsync(world, client, reference, proxy));
                    refused.Add(await PullAsync(world, client, reference, proxy));
                    await registry.RestartAsync();
                    await WaitUpAsync(proxy);

                    await network.DropAsync(registry.Port);
                    blackholedFirst.Add(await PullAsync(world, client, reference, proxy));
                    blackholed.Add(await PullAsync(world, client, reference, proxy));
                    await network.UndropAsync(registry.Port);
                    recovery.Add(await WaitUpAsync(proxy));
                }

                double u = Stats.Median(up), rf = Stats.Median(refusedFirst), r = Stats.Median(refused);
                double bf = Stats.Median(blackholedFirst), b = Stats.Median(blackholed), back = Stats.Median(recovery);
                table.AddRatio(label, $"{client} registry up: s", Seconds(u), "—", 1);
                table.AddRatio(label, $"{client} refused, first pull: s (speed vs up)", Seconds(rf), Seconds(u) + " (up)", u / rf);
                table.AddRatio(label, $"{client} refused, later pull: s (speed vs up)", Seconds(r), Seconds(u) + " (up)", u / r);
                var bound = rf + (2 * ConnectTimeout.TotalSeconds);
                table.Add(new ResultRow(label, $"{client} blackholed, first pull: s (vs refused first)", Seconds(bf), Seconds(rf) + " (refused)",
                    $"+{ResultTable.F(bf - rf)} s", "≤ refused + 2× connect timeout (4 s)", bf <= bound ? "holds" : "MISS"));
                table.AddRatio(label, $"{client} blackholed, later pull: s (speed vs refused later)", Seconds(b), Seconds(r) + " (refused)", r / b, atLeast: 1 / 1.2);
                table.Add(new ResultRow(label, $"{client} packets flow again: s until up (probe)", Seconds(back), "—", "—", "≤ 30 s (the longest probe interval)",
                    back <= 30 ? "holds" : "MISS"));
            }
        }
        finally
        {
            BenchWorld.DiscardProxy(proxy);
        }
    }

    private static Task<double> PullAsync(BenchWorld world, string client, string reference, ProxyRunner proxy) =>
        ImagePullScenario.PullAsync(client, reference, proxy.Url, proxy.CaPath, hostsFile: null);

    /// <summary>Waits until <c>/readyz</c> lists no upstream down (the probe saw the registry answer); returns the seconds waited.</summary>
    private static async Task<double> WaitUpAsync(ProxyRunner proxy)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var ready = await http.GetStringAsync($"{proxy.Url}/readyz");
            if (!ready.Contains("degraded: upstream", StringComparison.Ordinal))
            {
                return clock.Elapsed.TotalSeconds;
            }

            if (clock.Elapsed > TimeSpan.FromSeconds(90))
            {
                throw new TimeoutException($"the registry is back, the proxy still says: {ready}");
            }

            await Task.Delay(100);
        }
    }

    private static string Seconds(double s) => s.ToString("0.00", CultureInfo.InvariantCulture) + " s";
}
