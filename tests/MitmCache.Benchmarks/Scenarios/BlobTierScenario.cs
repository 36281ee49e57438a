using System.Globalization;
using System.Text.RegularExpressions;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 12. The S3 blob tier on the pull path, against a real Ceph RGW (mon + memstore OSD + radosgw on loopback), with curl
/// over HTTP/1.1 and a fresh proxy and data directory per repetition:
/// <list type="bullet">
/// <item>the upload's cost on a cold miss: the same cold miss through a proxy with <c>--blob-store</c> (each repetition on a
/// prefix of its own, so the upload really happens) and without, interleaved; and when the upload was done after the
/// client's last byte;</item>
/// <item>a cold pull served from the bucket: a proxy with an empty disk on the bucket that has the blob, against curl
/// straight from the registry and a warm local hit (the same proxy's second fetch), with the upstream blob GETs of the
/// bucket pull (0 once the fill reads from the bucket).</item>
/// </list>
/// </summary>
internal static partial class BlobTierScenario
{
    private const string Bucket = "bench-tier";
    private const string Name = "blob-tier";

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 64L << 20 : 256L << 20;
        var label = $"12 blob tier {size >> 20} MiB";
        var blob = await world.BlobAsync(Name, size);
        var url = world.BlobUrl(Name, blob);
        await using var engine = await CephRgw.StartAsync([Bucket]);
        var keys = engine.CredentialVariables;
        string[] Tier(string prefix) => ["--blob-store", $"s3://{Bucket}/{prefix}", "--s3-endpoint", engine.Endpoint.ToString()];

        List<double> off = [], on = [], uploadedAfter = [];
        string? filled = null;
        for (var rep = 0; rep < world.Options.Repetitions; rep++)
        {
            off.Add((await ColdMissAsync(world, url, size, null, null)).Speed);
            var prefix = $"rep-{rep}-{Guid.NewGuid():N}";
            var (speed, after) = await ColdMissAsync(world, url, size, Tier(prefix), keys);
            on.Add(speed);
            uploadedAfter.Add(after!.Value);
            filled = prefix;
        }

        double m = Stats.Median(on), b = Stats.Median(off);
        table.AddRatio(label, "cold miss MB/s, tier on (uploads after commit) vs off", Stats.Mb(m), Stats.Mb(b) + " (tier off)", m / b, atLeast: 0.9);
        table.Add(new ResultRow(label, "tier on: upload done, s after the client's last byte (median; min–max)",
            $"{Stats.Median(uploadedAfter):0.00} ({uploadedAfter.Min():0.00}–{uploadedAfter.Max():0.00})", "—", "—", "—", "—"));

        List<double> direct = [], bucket = [], warm = [];
        UpstreamRequests? bucketRequests = null;
        for (var rep = 0; rep < world.Options.Repetitions; rep++)
        {
            direct.Add((await CurlFetch.GetCheckedAsync(url, world.RegistryRoute, http2: false, size)).SpeedBytesPerSecond);
            var proxy = await world.StartProxyAsync(arguments: Tier(filled!), env: keys);
            try
            {
                (var cold, bucketRequests) = await world.CountUpstreamAsync(() => CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2: false, size));
                bucket.Add(cold.SpeedBytesPerSecond);
                warm.Add((await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2: false, size)).SpeedBytesPerSecond);
            }
            finally
            {
                BenchWorld.DiscardProxy(proxy);
            }
        }

        double c = Stats.Median(bucket), d = Stats.Median(direct), w = Stats.Median(warm);
        table.AddRatio(label, "cold pull, local disk empty, blob in the bucket: MB/s vs direct from registry", Stats.Mb(c), Stats.Mb(d) + " (direct)", c / d);
        table.AddRatio(label, "the same cold pull vs a warm local hit", Stats.Mb(c), Stats.Mb(w) + " (warm hit)", c / w);
        table.Add(new ResultRow(label, "upstream requests of that cold pull (blob GETs 0 when it came from the bucket)", $"{bucketRequests}", "—", "—", "GET 0",
            bucketRequests?.Get == 0 ? "holds" : "MISS"));
    }

    /// <summary>One cold miss through a fresh proxy; with the tier on, also how long after the last byte its upload was done.</summary>
    private static async Task<(double Speed, double? UploadedAfter)> ColdMissAsync(BenchWorld world, string url, long size, string[]? tier,
        IReadOnlyDictionary<string, string>? keys)
    {
        var proxy = await world.StartProxyAsync(arguments: tier, env: keys);
        try
        {
            // One small fill first (its upload too), so the measured one does not pay for the first TLS handshakes and JIT.
            var warmUp = await world.BlobAsync("blob-tier-warmup", 4L << 20);
            await CurlFetch.GetCheckedAsync(world.BlobUrl("blob-tier-warmup", warmUp), CurlRoute.ViaProxy(proxy), http2: false, warmUp.Size);
            if (tier is not null)
            {
                await WaitUploadedAsync(proxy, 1);
            }

            var result = await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2: false, size);
            return (result.SpeedBytesPerSecond, tier is null ? null : await WaitUploadedAsync(proxy, 2));
        }
        finally
        {
            BenchWorld.DiscardProxy(proxy);
        }
    }

    /// <summary>Polls <c>/metrics</c> until <paramref name="count"/> uploads are done; the seconds it took.</summary>
    private static async Task<double> WaitUploadedAsync(ProxyRunner proxy, int count)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            var text = await http.GetStringAsync(new Uri($"{proxy.Url}/metrics"));
            if (Uploaded().Match(text) is { Success: true } match && double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) >= count)
            {
                return clock.Elapsed.TotalSeconds;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException($"the proxy did not upload {count} blobs within 2 minutes:\n{proxy.Output}");
    }

    [GeneratedRegex(@"^mitmcache_blob_store_uploads_total\{[^}]*result=""uploaded""[^}]*\} ([0-9.e+]+)", RegexOptions.Multiline | RegexOptions.CultureInvariant)]
    private static partial Regex Uploaded();
}
