using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 1. A warm 1 GiB blob hit with curl, HTTP/1.1 and HTTP/2, against nginx serving the same file over TLS
/// and against distribution's pull-through cache serving its warm copy. Interleaved: every repetition
/// runs nginx, MitmCache and the peer back to back. Also the server CPU time per transfer (utime + stime
/// from /proc), which the other load on a shared machine disturbs less than wall time.
/// </summary>
internal static class WarmHitScenario
{
    public const string Name = "big";

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 256L << 20 : 1L << 30;
        var label = world.Options.Quick ? "256 MiB" : "1 GiB";
        var blob = await world.BlobAsync(Name, size);
        using var proxy = await world.StartProxyAsync();
        await world.ResolveManifestAsync(proxy, Name);
        var url = world.BlobUrl(Name, blob);
        await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2: false, size); // the fill

        using var peer = await PullThroughRegistry.StartAsync(world.Pki, world.Dir.Combine("pullthrough-warm"), world.Registry);
        var peerUrl = peer.BlobUrl(BenchWorld.Repository(Name), blob.Digest);
        var peerRoute = peer.Route(world.Pki);
        await CurlFetch.GetCheckedAsync(peerUrl, peerRoute, http2: false, size);
        if (!await peer.WaitStoredAsync([(blob.Hex, blob.Size)]))
        {
            table.Note("distribution pull-through did not store its copy within 60 s; its warm figures are not warm");
        }

        foreach (var http2 in new[] { false, true })
        {
            // One unmeasured hit per protocol: tiered JIT has compiled the hot path by the measured ones.
            await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size);
            List<double> nginx = [], mitm = [], pull = [], nginxCpu = [], mitmCpu = [], pullCpu = [];
            UpstreamRequests? mitmRequests = null, pullRequests = null;
            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                var before = world.Nginx.CpuTime();
                nginx.Add((await CurlFetch.GetCheckedAsync(world.NginxUrl(Name), world.NginxRoute, http2, size)).SpeedBytesPerSecond);
                nginxCpu.Add((world.Nginx.CpuTime() - before).TotalSeconds);
                before = proxy.CpuTime();
                (var result, mitmRequests) = await world.CountUpstreamAsync(() => CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size));
                mitm.Add(result.SpeedBytesPerSecond);
                mitmCpu.Add((proxy.CpuTime() - before).TotalSeconds);
                before = peer.CpuTime();
                (result, pullRequests) = await world.CountUpstreamAsync(() => CurlFetch.GetCheckedAsync(peerUrl, peerRoute, http2, size));
                pull.Add(result.SpeedBytesPerSecond);
                pullCpu.Add((peer.CpuTime() - before).TotalSeconds);
            }

            var version = http2 ? "HTTP/2" : "HTTP/1.1";
            double m = Stats.Median(mitm), n = Stats.Median(nginx), p = Stats.Median(pull);
            table.AddRatio($"1 warm hit {label}", $"{version} MB/s vs nginx TLS", Stats.Mb(m), Stats.Mb(n) + " (nginx)", m / n, atLeast: 0.95);
            table.AddRatio($"1 warm hit {label}", $"{version} MB/s vs distribution pull-through", Stats.Mb(m), Stats.Mb(p) + " (distribution)", m / p, atLeast: 1.0);
            double mc = Stats.Median(mitmCpu), nc = Stats.Median(nginxCpu), pc = Stats.Median(pullCpu);
            table.Add(new ResultRow($"1 warm hit {label}", $"{version} server CPU s per transfer (cost, lower is better)", $"{mc:0.00} s", $"{nc:0.00} s (nginx), {pc:0.00} s (distribution)",
                $"{ResultTable.F(mc / nc)}× CPU", "—", "—"));
            table.Add(new ResultRow($"1 warm hit {label}", $"{version} upstream requests per warm pull: MitmCache vs distribution pull-through", $"{mitmRequests}",
                $"{pullRequests}", "—", "—", "—"));
        }
    }
}
