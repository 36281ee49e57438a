using System.Diagnostics;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 4. N clients (20, 100) start together on one cold 256 MiB blob. Counted from the registry's access
/// log: upstream blob GETs (must be 1). Timed: wall time until the last client has the whole blob,
/// against one client alone on a cold proxy. For scale, also the same N clients on the now warm blob
/// (pure serving, no upstream; 20 only, to stay within the time budget). The peers on the same cold blob:
/// distribution's pull-through cache and Squid ssl-bump with collapsed forwarding, 20 clients each. The
/// upstream requests of every cold run by method (HEAD probes included), from the registry's access log.
/// </summary>
internal static class ConcurrencyScenario
{
    private const string Name = "c256";

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 64L << 20 : 256L << 20;
        var blob = await world.BlobAsync(Name, size);
        var url = world.BlobUrl(Name, blob);
        var path = $"/blobs/{blob.Digest}";
        var label = $"4 concurrency cold {size >> 20} MiB";

        // One client alone, cold: the reference wall time.
        List<double> alone = [];
        UpstreamRequests? aloneRequests = null;
        for (var rep = 0; rep < world.Options.Repetitions; rep++)
        {
            var run = await ColdRunAsync(world, url, size, 1, warmToo: false);
            alone.Add(run.Cold);
            aloneRequests = run.Requests;
        }

        var single = Stats.Median(alone);
        var counts = world.Options.Quick ? new[] { 20 } : new[] { 20, 100 };
        var mitmCold = new Dictionary<int, double>();
        foreach (var clients in counts)
        {
            var (cold, warm, requests, fetches) = await ColdRunAsync(world, url, size, clients, warmToo: clients <= 20);
            mitmCold[clients] = cold;
            table.Add(new ResultRow(label, $"{clients} clients: upstream blob GETs (all upstream requests; 1 client alone)", $"{fetches} ({requests})",
                $"{aloneRequests} (1 client)", "—", "= 1", fetches == 1 ? "holds" : "MISS"));
            table.AddRatio(label, $"{clients} clients: wall s vs 1 client alone", Seconds(cold), Seconds(single) + " (1 client)", cold / single, atMost: 1.2);
            if (!double.IsNaN(warm))
            {
                table.AddRatio(label, $"{clients} clients: cold wall s vs same {clients} warm", Seconds(cold), Seconds(warm) + $" ({clients} warm)", cold / warm);
            }
        }

        // The peer: distribution's pull-through cache, N clients on a cold blob.
        var peerClients = 20;
        var peer = await PullThroughRegistry.StartAsync(world.Pki, world.Dir.Combine("pullthrough-cold"), world.Registry);
        double peerWall;
        UpstreamRequests peerRequests;
        int peerFetches;
        try
        {
            (peerWall, peerRequests) = await world.CountUpstreamAsync(async () =>
            {
                var wall = await ManyAsync(peer.BlobUrl(BenchWorld.Repository(Name), blob.Digest), peer.Route(world.Pki), size, peerClients);
                return await peer.WaitStoredAsync([(blob.Hex, blob.Size)]) ? wall : throw new TimeoutException("distribution pull-through did not store the blob within a minute");
            });
            peerFetches = world.Registry.CountRequests("GET", path);
        }
        finally
        {
            peer.Discard();
        }

        table.Add(new ResultRow(label, $"{peerClients} clients: upstream blob GETs (all upstream requests), distribution pull-through", $"{peerFetches} ({peerRequests})", "—", "—", "—", "—"));
        table.AddRatio(label, $"{peerClients} clients: cold wall s, MitmCache vs distribution pull-through (speed ratio)", Seconds(mitmCold[peerClients]),
            Seconds(peerWall) + " (distribution)", peerWall / mitmCold[peerClients], atLeast: 1.0);

        // The other peer: Squid ssl-bump with collapsed forwarding, 20 clients (at 100 it needs minutes,
        // beyond the suite's time budget).
        if (!SquidServer.Installed)
        {
            table.Note("Squid (squid-openssl) is not installed: its rows are missing.");
            return;
        }

        using var squid = await SquidServer.StartAsync(world.Pki);
        var (squidWall, squidRequests) = await world.CountUpstreamAsync(() => ManyAsync(url, new CurlRoute(world.Pki.CaCertPath, Proxy: squid.Url), size, peerClients));
        var squidFetches = world.Registry.CountRequests("GET", path);
        table.Add(new ResultRow(label, $"{peerClients} clients: upstream blob GETs (all upstream requests), Squid ssl-bump with collapsed_forwarding", $"{squidFetches} ({squidRequests})", "—", "—", "—", "—"));
        table.AddRatio(label, $"{peerClients} clients: cold wall s, MitmCache vs Squid (speed ratio)", Seconds(mitmCold[peerClients]), Seconds(squidWall) + " (Squid)",
            squidWall / mitmCold[peerClients]);
    }

    /// <summary>
    /// A fresh proxy; the manifest first (as a client would), then N clients at once; optionally N again, warm.
    /// The upstream requests of the cold part (manifest included), and its upstream GETs of the blob.
    /// </summary>
    private static async Task<(double Cold, double Warm, UpstreamRequests Requests, int BlobFetches)> ColdRunAsync(BenchWorld world, string url, long size, int clients, bool warmToo)
    {
        var proxy = await world.StartProxyAsync();
        try
        {
            var (cold, requests) = await world.CountUpstreamAsync(async () =>
            {
                await world.ResolveManifestAsync(proxy, Name);
                return await ManyAsync(url, CurlRoute.ViaProxy(proxy), size, clients);
            });
            var fetches = world.Registry.CountRequests("GET", new Uri(url).AbsolutePath);
            var warm = warmToo ? await ManyAsync(url, CurlRoute.ViaProxy(proxy), size, clients) : double.NaN;
            return (cold, warm, requests, fetches);
        }
        finally
        {
            BenchWorld.DiscardProxy(proxy);
        }
    }

    /// <summary>N curl processes started together (HTTP/1.1, as Go clients pull); seconds until all are done.</summary>
    public static async Task<double> ManyAsync(string url, CurlRoute route, long size, int clients)
    {
        var clock = Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => CurlFetch.GetAsync(url, route, http2: false, size)));
        var elapsed = clock.Elapsed.TotalSeconds;
        var failed = results.Where(r => !r.Ok).ToList();
        return failed.Count == 0 ? elapsed : throw new InvalidOperationException($"{failed.Count} of {clients} clients failed: {failed[0].Error}");
    }

    private static string Seconds(double s) => s.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " s";
}
