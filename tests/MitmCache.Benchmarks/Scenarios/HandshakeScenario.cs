using System.Security.Cryptography.X509Certificates;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 5. Connection set-up rate, each request a new TCP connection and a full TLS handshake: nginx TLS direct
/// with a small GET, against the proxy (CONNECT + TLS + GET of the same small file as a cached blob).
/// Then the rate when every connection names a new host under <c>*.bench.test</c>, so each one mints a
/// leaf: with a GET (forwarded to nginx, which adds the proxy's own upstream handshake) and handshake only.
/// And the same-host and nginx runs again with TLS resumption on in the client (session tickets). Beside nginx, a bare
/// Kestrel with the proxy's settings and none of its code (<see cref="KestrelFloor"/>), with and without a CONNECT first:
/// what .NET's TLS and Kestrel cost per connection, so the proxy's own share can be told apart.
/// </summary>
internal static class HandshakeScenario
{
    private const string Name = "small";
    private const int Concurrency = 4;

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var blob = await world.BlobAsync(Name, 4096);
        using var proxy = await world.StartProxyAsync();
        await world.ResolveManifestAsync(proxy, Name);
        var blobPath = $"/v2/{BenchWorld.Repository(Name)}/blobs/{blob.Digest}";
        using var floor = await KestrelFloor.StartAsync(world, Hosts.Registry);
        await CurlFetch.GetCheckedAsync(world.BlobUrl(Name, blob), CurlRoute.ViaProxy(proxy), http2: false, blob.Size);

        var proxyRoot = X509CertificateLoader.LoadCertificateFromFile(proxy.CaPath);
        var nginx = new HandshakeRequest(null, world.Nginx.Port, Hosts.Registry, "/" + Name, world.Pki.CaCertificate);
        var sameHost = new HandshakeRequest(proxy.Port, world.Registry.Port, Hosts.Registry, blobPath, proxyRoot);
        var sameHostTls = sameHost with { Path = null };
        var nginxResume = nginx with { Resume = true };
        var kestrel = nginx with { ServerPort = floor.TlsPort };
        var kestrelConnect = nginx with { ProxyPort = floor.ConnectPort };
        var sameHostResume = sameHost with { Resume = true };
        var newHost = new HandshakeRequest(proxy.Port, 443, "g{0}." + BenchWorld.BenchDomain, "/" + Name, proxyRoot);
        var newHostTls = new HandshakeRequest(proxy.Port, 443, "t{0}." + BenchWorld.BenchDomain, null, proxyRoot);

        var perRound = world.Options.Quick ? 100 : 500;
        var rounds = world.Options.Repetitions;
        var newPerRound = world.Options.Quick ? 50 : 300; // names stay under the leaf cache's 1,024 hosts
        int gNext = 0, tNext = 0;

        // Warm-up: JIT (until its background compiling has settled), thread pool, the proxy's upstream pool.
        await HandshakeClient.RunAsync(nginx, 0, 100, Concurrency);
        await HandshakeClient.RunAsync(sameHost, 0, 100, Concurrency);
        await HandshakeClient.RunAsync(nginxResume, 0, 100, Concurrency);
        await HandshakeClient.RunAsync(sameHostResume, 0, 100, Concurrency);
        await HandshakeClient.RunAsync(newHost, gNext, 20, Concurrency);
        gNext += 20;
        await HandshakeClient.RunAsync(newHostTls, tNext, 20, Concurrency);
        tNext += 20;
        var floorWarmUpRounds = await ProcStat.WarmUpAsync(floor.Pid, async _ =>
        {
            await HandshakeClient.RunAsync(kestrel, 0, 200, Concurrency);
            await HandshakeClient.RunAsync(kestrelConnect, 0, 200, Concurrency);
        });
        var warmUpRounds = await proxy.WarmUpAsync(async _ =>
        {
            await HandshakeClient.RunAsync(sameHost, 0, 200, Concurrency);
            await HandshakeClient.RunAsync(sameHostResume, 0, 50, Concurrency);
        });

        if (world.Options.PerfDirectory is not null)
        {
            var perfRound = perRound * 4; // enough samples to tell the stages apart
            // One more round, not measured, under perf: where a connection's CPU goes (and the bare Kestrel's, with a CONNECT).
            await PerfProfile.RecordAsync(world, proxy.Pid, "handshakes", perfRound, "request", () => HandshakeClient.RunAsync(sameHost, 0, perfRound, Concurrency));
            await PerfProfile.RecordAsync(world, proxy.Pid, "handshakes-resumed", perfRound, "request", () => HandshakeClient.RunAsync(sameHostResume, 0, perfRound, Concurrency));
            await PerfProfile.RecordAsync(world, floor.Pid, "handshakes-bare-kestrel", perfRound, "request", () => HandshakeClient.RunAsync(kestrelConnect, 0, perfRound, Concurrency));
        }

        List<double> nginxRate = [], sameRate = [], sameTlsRate = [], newRate = [], newTlsRate = [], nginxResumeRate = [], sameResumeRate = [];
        List<double> proxyCpu = [], nginxCpu = [], proxyTlsCpu = [], proxyResumeCpu = [], nginxResumeCpu = [];
        List<double> kestrelRate = [], kestrelCpu = [], kestrelConnectRate = [], kestrelConnectCpu = [];
        UpstreamRequests? requests = null;
        for (var round = 0; round < rounds; round++)
        {
            nginxRate.Add(await Timed(world.Nginx.CpuTime, nginxCpu, perRound, () => HandshakeClient.RunAsync(nginx, 0, perRound, Concurrency)));
            (var rate, requests) = await world.CountUpstreamAsync(() => Timed(proxy.CpuTime, proxyCpu, perRound, () => HandshakeClient.RunAsync(sameHost, 0, perRound, Concurrency)));
            sameRate.Add(rate);
            kestrelRate.Add(await Timed(floor.CpuTime, kestrelCpu, perRound, () => HandshakeClient.RunAsync(kestrel, 0, perRound, Concurrency)));
            kestrelConnectRate.Add(await Timed(floor.CpuTime, kestrelConnectCpu, perRound, () => HandshakeClient.RunAsync(kestrelConnect, 0, perRound, Concurrency)));
            nginxResumeRate.Add(await Timed(world.Nginx.CpuTime, nginxResumeCpu, perRound, () => HandshakeClient.RunAsync(nginxResume, 0, perRound, Concurrency)));
            sameResumeRate.Add(await Timed(proxy.CpuTime, proxyResumeCpu, perRound, () => HandshakeClient.RunAsync(sameHostResume, 0, perRound, Concurrency)));
            newRate.Add(await HandshakeClient.RunAsync(newHost, gNext, newPerRound, Concurrency));
            gNext += newPerRound;
            sameTlsRate.Add(await Timed(proxy.CpuTime, proxyTlsCpu, perRound, () => HandshakeClient.RunAsync(sameHostTls, 0, perRound, Concurrency)));
            newTlsRate.Add(await HandshakeClient.RunAsync(newHostTls, tNext, newPerRound, Concurrency));
            tNext += newPerRound;
        }

        double n = Stats.Median(nginxRate), s = Stats.Median(sameRate), st = Stats.Median(sameTlsRate);
        double g = Stats.Median(newRate), t = Stats.Median(newTlsRate), nr = Stats.Median(nginxResumeRate), sr = Stats.Median(sameResumeRate);
        const string Label = "5 handshakes";
        table.AddRatio(Label, "new conn + CONNECT + TLS + 4 KiB GET, req/s vs nginx TLS + GET", R(s), R(n) + " (nginx)", s / n, atLeast: 0.95);
        double pc = Stats.Median(proxyCpu), nc = Stats.Median(nginxCpu), prc = Stats.Median(proxyResumeCpu), nrc = Stats.Median(nginxResumeCpu);
        table.Add(new ResultRow(Label, "the same: server CPU ms per request (cost; CONNECT + TLS alone)", $"{pc:0.00} ms ({Stats.Median(proxyTlsCpu):0.00} ms)",
            $"{nc:0.00} ms (nginx)", $"{ResultTable.F(pc / nc)}× CPU", "—", "—"));
        table.Add(new ResultRow(Label, "the same: upstream requests during one round", $"{requests}", "—", "—", "—", "—"));
        double k = Stats.Median(kestrelRate), kc = Stats.Median(kestrelConnectRate);
        double kCpu = Stats.Median(kestrelCpu), kcCpu = Stats.Median(kestrelConnectCpu);
        table.AddRatio(Label, "bare Kestrel, none of MitmCache's code: TLS + 4 KiB GET, req/s vs nginx (the platform's floor)", R(k), R(n) + " (nginx)", k / n);
        table.AddRatio(Label, "bare Kestrel answering a CONNECT first: CONNECT + TLS + 4 KiB GET, req/s vs nginx", R(kc), R(n) + " (nginx)", kc / n);
        table.Add(new ResultRow(Label, "the same two: server CPU ms per request (cost)", $"{kCpu:0.00} ms / {kcCpu:0.00} ms", $"{nc:0.00} ms (nginx)",
            $"{ResultTable.F(kCpu / nc)}× / {ResultTable.F(kcCpu / nc)}× CPU", "—", "—"));
        table.AddRatio(Label, "MitmCache vs bare Kestrel with the CONNECT: req/s (what MitmCache's own code costs)", R(s), R(kc) + " (bare Kestrel)", s / kc);
        table.Add(new ResultRow(Label, "the same: server CPU ms per request (cost)", $"{pc:0.00} ms", $"{kcCpu:0.00} ms (bare Kestrel)",
            $"{ResultTable.F(pc / kcCpu)}× CPU", "—", "—"));
        table.AddRatio(Label, "the same with TLS resumption on (session tickets), req/s vs nginx resuming too", R(sr), R(nr) + " (nginx)", sr / nr);
        table.Add(new ResultRow(Label, "the same with TLS resumption on: server CPU ms per request (cost)", $"{prc:0.00} ms", $"{nrc:0.00} ms (nginx)",
            $"{ResultTable.F(prc / nrc)}× CPU", "—", "—"));
        table.AddRatio(Label, "new host each time (leaf minted) + GET via upstream, req/s vs nginx", R(g), R(n) + " (nginx)", g / n);
        table.AddRatio(Label, "new host each time, CONNECT + TLS only, req/s vs same host", R(t), R(st) + " (same host)", t / st);
        table.Note($"handshakes: {Concurrency} connections at a time, TLS resumption off in the client unless said, {perRound}×{rounds} requests per mode interleaved with nginx ({newPerRound}×{rounds} new hosts); the proxy's JIT settled after {warmUpRounds} warm-up rounds of 250 requests, the bare Kestrel's after {floorWarmUpRounds} of 400.");
    }

    /// <summary>Runs a round; adds the server's CPU-ms per request (<paramref name="cpu"/> read before and after) to <paramref name="perRequest"/>.</summary>
    private static async Task<double> Timed(Func<TimeSpan> cpu, List<double> perRequest, int count, Func<Task<double>> round)
    {
        var before = cpu();
        var rate = await round();
        perRequest.Add((cpu() - before).TotalMilliseconds / count);
        return rate;
    }

    private static string R(double rate) => rate.ToString("0", System.Globalization.CultureInfo.InvariantCulture);
}
