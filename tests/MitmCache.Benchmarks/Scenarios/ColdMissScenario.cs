using MitmCache.Benchmarks.Infrastructure;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 2. A cold 1 GiB miss: curl straight from the upstream registry (TLS) against curl through a proxy with
/// an empty cache, which fetches, hashes, writes, fsyncs and commits while it streams. A fresh proxy and
/// data directory for every repetition.
/// </summary>
internal static class ColdMissScenario
{
    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 256L << 20 : 1L << 30;
        var label = world.Options.Quick ? "256 MiB" : "1 GiB";
        var blob = await world.BlobAsync(WarmHitScenario.Name, size);
        var url = world.BlobUrl(WarmHitScenario.Name, blob);
        foreach (var http2 in new[] { false, true })
        {
            List<double> direct = [], mitm = [];
            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                direct.Add((await CurlFetch.GetCheckedAsync(url, world.RegistryRoute, http2, size)).SpeedBytesPerSecond);
                var proxy = await world.StartProxyAsync();
                try
                {
                    mitm.Add((await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size)).SpeedBytesPerSecond);
                }
                finally
                {
                    BenchWorld.DiscardProxy(proxy);
                }
            }

            double m = Stats.Median(mitm), d = Stats.Median(direct);
            table.AddRatio($"2 cold miss {label}", $"{(http2 ? "HTTP/2" : "HTTP/1.1")} MB/s vs direct from registry", Stats.Mb(m), Stats.Mb(d) + " (direct)", m / d, atLeast: 0.9);
        }
    }
}
