using System.Diagnostics;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 3. A whole 10-layer image pulled by real clients, skopeo (to an OCI dir) and <c>ctr content fetch</c>
/// (a private containerd per pull, so its content store is empty): straight from the registry (the
/// client gets registry.test from a private /etc/hosts) against a cold proxy and then the same proxy warm,
/// and against distribution's pull-through cache, cold (empty storage) and then warm (once it has stored
/// every blob). The upstream registry's requests of each pull, by method, from its access log.
/// </summary>
internal static class ImagePullScenario
{
    private const string Repository = "bench/image";

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var layerSize = world.Options.Quick ? 5 << 20 : 50 << 20;
        var builder = new OciImageBuilder();
        for (var i = 0; i < 10; i++)
        {
            builder.AddLayer(layerSize, seed: 1000 + i);
        }

        var image = builder.Build();
        var total = image.Layers.Sum(l => (long)l.Bytes.Length);
        Console.Error.WriteLine($"  pushing a 10-layer image, {total >> 20} MiB");
        using (var http = world.Registry.CreateClient(TimeSpan.FromMinutes(5)))
        {
            await new RegistryPusher(http, world.Registry.Authority).PushAsync(Repository, "latest", image, CancellationToken.None);
        }

        var reference = $"{world.Registry.Authority}/{Repository}:latest";
        var hosts = PrivateHosts.WriteFile(world.Dir.Combine("client-hosts"), Hosts.Registry);
        var blobs = image.Blobs.Select(b => (Digests.Hex(b.Digest), (long)b.Bytes.Length)).ToList();
        var label = $"3 image pull 10 layers {total >> 20} MiB";
        var ca = world.Pki.CaCertPath;

        var registryPid = ProcStat.FindByCommandLine(Path.Combine(Path.GetDirectoryName(world.Registry.StorageRoot)!, "config.yml"));
        foreach (var client in new[] { "skopeo", "ctr" })
        {
            List<double> direct = [], cold = [], warm = [], settled = [], peerCold = [], peerWarm = [];
            List<double> directCpu = [], warmCpu = [], settledCpu = [], peerWarmCpu = [];
            var requests = new Dictionary<string, UpstreamRequests>();
            var kinds = new Dictionary<string, string>();
            async Task<double> CountedAsync(string key, Func<Task<double>> pull, Func<TimeSpan>? serverCpu = null, List<double>? cpu = null)
            {
                var before = serverCpu?.Invoke() ?? TimeSpan.Zero;
                var (seconds, counted) = await world.CountUpstreamAsync(pull);
                cpu?.Add((serverCpu!() - before).TotalSeconds);
                requests[key] = counted;
                kinds[key] = ByKind(world.Registry.AccessLog);
                return seconds;
            }

            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                direct.Add(await CountedAsync("direct", () => PullAsync(client, reference, proxyUrl: null, ca, hosts), () => ProcStat.CpuTime(registryPid), directCpu));
                var proxy = await world.StartProxyAsync();
                try
                {
                    cold.Add(await CountedAsync("cold", () => PullAsync(client, reference, proxy.Url, proxy.CaPath, hostsFile: null)));
                    warm.Add(await CountedAsync("warm", () => PullAsync(client, reference, proxy.Url, proxy.CaPath, hostsFile: null), proxy.CpuTime, warmCpu));
                    // The same proxy once its JIT has settled (a proxy that has been up a while), as scenarios 1, 2 and 5 measure:
                    // a fresh proxy's first pulls also pay for tiered compilation of every hot method.
                    await proxy.WarmUpAsync(_ => PullAsync(client, reference, proxy.Url, proxy.CaPath, hostsFile: null));
                    settled.Add(await CountedAsync("settled", () => PullAsync(client, reference, proxy.Url, proxy.CaPath, hostsFile: null), proxy.CpuTime, settledCpu));
                    if (rep == 0 && world.Options.PerfDirectory is not null)
                    {
                        // One more warm pull, not measured, under perf: where serving a whole image goes.
                        await PerfProfile.RecordAsync(world, proxy.Pid, $"image-warm-{client}", total / (double)(1L << 30), "GiB",
                            () => PullAsync(client, reference, proxy.Url, proxy.CaPath, hostsFile: null));
                    }
                }
                finally
                {
                    BenchWorld.DiscardProxy(proxy);
                }

                var peer = await PullThroughRegistry.StartAsync(world.Pki, world.Dir.Combine($"pullthrough-image-{client}-{rep}"), world.Registry);
                try
                {
                    var peerReference = $"{Hosts.Registry}:{peer.Port}/{Repository}:latest";
                    peerCold.Add(await CountedAsync("peer cold", async () =>
                    {
                        var seconds = await PullAsync(client, peerReference, proxyUrl: null, ca, hosts);
                        return await peer.WaitStoredAsync(blobs) ? seconds : throw new TimeoutException("distribution pull-through did not store the image within a minute");
                    }));
                    peerWarm.Add(await CountedAsync("peer warm", () => PullAsync(client, peerReference, proxyUrl: null, ca, hosts), peer.CpuTime, peerWarmCpu));
                }
                finally
                {
                    peer.Discard();
                }

                Console.Error.WriteLine(FormattableString.Invariant(
                    $"  {client} rep {rep}: direct {direct[^1]:0.00} s, cold {cold[^1]:0.00} s, warm {warm[^1]:0.00} s, settled {settled[^1]:0.00} s, distribution cold {peerCold[^1]:0.00} s, warm {peerWarm[^1]:0.00} s"));
            }

            double d = Stats.Median(direct), c = Stats.Median(cold), w = Stats.Median(warm), pc = Stats.Median(peerCold), pw = Stats.Median(peerWarm);
            table.AddRatio(label, $"{client} cold: s (speed vs direct)", Seconds(c), Seconds(d) + " (direct)", d / c, atLeast: 0.6);
            table.AddRatio(label, $"{client} warm: s (speed vs direct)", Seconds(w), Seconds(d) + " (direct)", d / w, atLeast: 0.95);
            double st = Stats.Median(settled);
            table.AddRatio(label, $"{client} warm, proxy settled (JIT quiet): s (speed vs direct)", Seconds(st), Seconds(d) + " (direct)", d / st, atLeast: 0.95);
            table.AddRatio(label, $"{client} warm, proxy settled: s (speed vs distribution pull-through)", Seconds(st), Seconds(pw) + " (distribution)", pw / st, atLeast: 1.0);
            table.AddRatio(label, $"{client} cold: s (speed vs distribution pull-through)", Seconds(c), Seconds(pc) + " (distribution)", pc / c, atLeast: 1.0);
            table.AddRatio(label, $"{client} warm: s (speed vs distribution pull-through)", Seconds(w), Seconds(pw) + " (distribution)", pw / w, atLeast: 1.0);
            table.Add(new ResultRow(label, $"{client} upstream requests, cold / warm: MitmCache vs distribution pull-through (direct)",
                $"{requests["cold"]} / {requests["warm"]}", $"{requests["peer cold"]} / {requests["peer warm"]} ({requests["direct"]} direct)", "—", "—", "—"));
            table.Add(new ResultRow(label, $"{client} the same by kind, warm: MitmCache vs distribution pull-through (direct)",
                kinds["warm"], $"{kinds["peer warm"]} ({kinds["direct"]} direct)", "—", "—", "—"));
            double wc = Stats.Median(warmCpu), dc = Stats.Median(directCpu), pwc = Stats.Median(peerWarmCpu);
            table.Add(new ResultRow(label, $"{client} warm: server CPU s per pull (cost): MitmCache fresh / settled vs the registry serving it directly (distribution pull-through warm)",
                $"{wc:0.00} s / {Stats.Median(settledCpu):0.00} s", $"{dc:0.00} s (registry), {pwc:0.00} s (distribution)",
                $"{ResultTable.F(wc / dc)}× / {ResultTable.F(Stats.Median(settledCpu) / dc)}× CPU", "—", "—"));
        }
    }

    /// <summary>Registry requests by what they ask for: <c>/v2/</c> pings, manifests, blobs, anything else (the fixture's markers left out).</summary>
    private static string ByKind(IEnumerable<(string Method, string Target, int Status)> log)
    {
        var counts = log.Where(e => !e.Target.Contains("mitmcache-test-marker", StringComparison.Ordinal))
            .GroupBy(e => e.Target == "/v2/" ? "ping" : e.Target.Contains("/manifests/", StringComparison.Ordinal) ? $"manifest {e.Method}"
                : e.Target.Contains("/blobs/", StringComparison.Ordinal) ? $"blob {e.Method}" : $"other {e.Method}")
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Count()} {g.Key}");
        return string.Join(", ", counts) is { Length: > 0 } text ? text : "none";
    }

    private static string Seconds(double s) => s.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " s";

    /// <summary>One pull into an empty client store, through <paramref name="proxyUrl"/> or straight (names from <paramref name="hostsFile"/>); its wall time in seconds.</summary>
    internal static async Task<double> PullAsync(string client, string reference, string? proxyUrl, string ca, string? hostsFile)
    {
        using var dir = TempDir.Create("mitmcache-bench-pull");
        ProcessResult result;
        Stopwatch clock;
        if (client == "skopeo")
        {
            clock = Stopwatch.StartNew();
            result = await Skopeo.CopyToOciAsync(reference, dir.Combine("oci"), proxyUrl, ca, creds: null, all: false, hostsFile, CancellationToken.None);
        }
        else
        {
            await using var containerd = await ContainerdServer.StartAsync(dir.Combine("containerd"), CancellationToken.None);
            clock = Stopwatch.StartNew();
            result = await containerd.ContentFetchAsync(reference, proxyUrl, ca, user: null, allPlatforms: false, hostsFile, CancellationToken.None);
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        return result.Succeeded ? elapsed : throw new InvalidOperationException($"{client} pull of {reference} failed: {result}");
    }
}
