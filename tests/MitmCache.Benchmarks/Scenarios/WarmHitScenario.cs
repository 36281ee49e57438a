using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 1. A warm 1 GiB blob hit with curl, HTTP/1.1 and HTTP/2, against nginx serving the same file over TLS
/// and against distribution's pull-through cache serving its warm copy. Interleaved: every repetition
/// runs nginx, MitmCache and the peer back to back.
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
        var peerUrl = $"https://{Hosts.Registry}:{peer.Port}/v2/{BenchWorld.Repository(Name)}/blobs/{blob.Digest}";
        var peerRoute = CurlRoute.Direct(world.Pki.CaCertPath, Hosts.Registry, peer.Port, peer.Port);
        await CurlFetch.GetCheckedAsync(peerUrl, peerRoute, http2: false, size);
        for (var wait = 0; !peer.HasBlob(blob) && wait < 600; wait++)
        {
            await Task.Delay(100); // it stores its copy in the background
        }

        if (!peer.HasBlob(blob))
        {
            table.Note("distribution pull-through did not store its copy within 60 s; its warm figures are not warm");
        }

        foreach (var http2 in new[] { false, true })
        {
            List<double> nginx = [], mitm = [], pull = [];
            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                nginx.Add((await CurlFetch.GetCheckedAsync(world.NginxUrl(Name), world.NginxRoute, http2, size)).SpeedBytesPerSecond);
                mitm.Add((await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size)).SpeedBytesPerSecond);
                pull.Add((await CurlFetch.GetCheckedAsync(peerUrl, peerRoute, http2, size)).SpeedBytesPerSecond);
            }

            var version = http2 ? "HTTP/2" : "HTTP/1.1";
            double m = Stats.Median(mitm), n = Stats.Median(nginx), p = Stats.Median(pull);
            table.AddRatio($"1 warm hit {label}", $"{version} MB/s vs nginx TLS", Stats.Mb(m), Stats.Mb(n) + " (nginx)", m / n, atLeast: 0.95);
            table.AddRatio($"1 warm hit {label}", $"{version} MB/s vs distribution pull-through", Stats.Mb(m), Stats.Mb(p) + " (distribution)", m / p);
        }
    }
}
