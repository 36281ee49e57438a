using System.Text.RegularExpressions;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Observability;

/// <summary><c>GET /metrics</c> scraped after real pulls, parsed as the Prometheus text format, values checked.</summary>
public sealed partial class MetricsTests
{
    [Fact]
    public async Task Metrics_AfterColdAndWarmPull_ParseAsPrometheusTextWithExpectedValues()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/metered", "v1", (300_000, 61), (70_000, 62));
        var reference = $"{world.Authority}/library/metered:v1";
        var blobBytes = image.Blobs.Sum(b => (long)b.Bytes.Length);

        var cold = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("cold"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(cold.Succeeded, cold.StdErr);
        var warm = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("warm"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(warm.Succeeded, warm.StdErr);

        // A request is counted once its response has ended, which can be just after skopeo has exited:
        // scrape until the two pulls are all in, then check every value.
        var registry = ("registry", world.Authority);
        using var http = new HttpClient();
        string? contentType = null;
        var text = "";
        PrometheusText metrics = null!;
        await Poll.UntilAsync(async () =>
        {
            (contentType, text) = await ScrapeAsync(http, world.Proxy.Url);
            metrics = PrometheusText.Parse(text);
            return BothPullsCounted(metrics, registry);
        }, TimeSpan.FromSeconds(10));

        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", contentType);

        // Every family, with its type (the README's Metrics table): a new instrument is added here too.
        Assert.Equal(s_families, metrics.Types.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => (t.Key, t.Value)));
        Assert.DoesNotContain("{}", text, StringComparison.Ordinal); // a series without labels is `name value`, as it always was

        // Conventions: every family documented and typed, mitmcache_ names, _total only on counters, _bytes as the unit.
        foreach (var sample in metrics.Samples)
        {
            Assert.True(metrics.Help.ContainsKey(sample.Name), $"{sample.Name} has no HELP");
            Assert.True(metrics.Types.ContainsKey(sample.Name), $"{sample.Name} has no TYPE");
            Assert.True(sample.Value >= 0, $"{sample.Name} is negative");
            Assert.True(sample.Value == Math.Floor(sample.Value), $"{sample.Name} counts things, yet is fractional");
        }

        foreach (var (name, type) in metrics.Types)
        {
            Assert.Matches(ConventionalName(), name);
            Assert.True(metrics.Help.ContainsKey(name), $"{name} has TYPE but no HELP");
            Assert.Equal(type == "counter", name.EndsWith("_total", StringComparison.Ordinal));
            Assert.True(!name.Contains("bytes", StringComparison.Ordinal) || name.EndsWith("_bytes", StringComparison.Ordinal) || name.EndsWith("_bytes_total", StringComparison.Ordinal),
                $"{name}: the unit goes last");
        }

        // What issue 5 asks to see, each family present.
        foreach (var family in new[]
        {
            "mitmcache_requests_total", "mitmcache_served_bytes_total", "mitmcache_upstream_errors_total", "mitmcache_fills_in_flight",
            "mitmcache_cache_size_bytes", "mitmcache_cache_entries", "mitmcache_evictions_total", "mitmcache_certificates_minted_total",
            "mitmcache_connections_total",
        })
        {
            Assert.True(metrics.Types.ContainsKey(family), $"{family} is missing");
        }

        Assert.Equal(3, metrics.Value("mitmcache_requests_total", registry, ("kind", "blob"), ("result", "miss")));
        Assert.True(metrics.Value("mitmcache_requests_total", registry, ("kind", "blob"), ("result", "hit")) >= 3, "the warm pull was served from cache");
        Assert.True(metrics.Sum("mitmcache_requests_total", registry, ("kind", "manifest")) >= 2);
        Assert.True(metrics.Sum("mitmcache_requests_total", registry, ("kind", "ping")) >= 2);

        // The cold pull's blob bodies came from upstream, the warm pull's from the cache; each blob was fetched once.
        Assert.True(metrics.Value("mitmcache_served_bytes_total", ("source", "cache")) >= blobBytes);
        Assert.True(metrics.Value("mitmcache_served_bytes_total", ("source", "upstream")) >= blobBytes);
        Assert.Equal(blobBytes, metrics.Value("mitmcache_upstream_bytes_total"));
        Assert.Equal(3, metrics.Value("mitmcache_fills_total"));
        Assert.Equal(3, metrics.Value("mitmcache_fills_completed_total", ("outcome", "committed")));
        Assert.Equal(0, metrics.Value("mitmcache_fills_in_flight"));
        Assert.Equal(0, metrics.Sum("mitmcache_upstream_errors_total"));

        Assert.Equal(blobBytes + image.Manifest.Length, metrics.Value("mitmcache_cache_size_bytes"));
        Assert.Equal(world.Proxy.Settings.MaxCacheBytes, metrics.Value("mitmcache_cache_max_size_bytes"));
        Assert.Equal(3, metrics.Value("mitmcache_cache_entries", ("kind", "blob")));
        Assert.Equal(1, metrics.Value("mitmcache_cache_entries", ("kind", "manifest")));
        Assert.Equal(0, metrics.Sum("mitmcache_evictions_total"));
        Assert.Equal(0, metrics.Value("mitmcache_evictions_total", ("reason", "size")));

        Assert.True(metrics.Value("mitmcache_connections_total", ("decision", "intercept")) >= 2, "two skopeo runs, each through its own CONNECT");
        Assert.Equal(0, metrics.Value("mitmcache_connections_total", ("decision", "tunnel")));
        Assert.Equal(1, metrics.Value("mitmcache_certificates_minted_total")); // one leaf for registry.test, cached for the second pull
        Assert.Equal(1, metrics.Value("mitmcache_certificates_cached"));
        Assert.Equal(1, metrics.Value("mitmcache_upstream_up", ("upstream", world.Authority))); // answered every request
        Assert.True(metrics.Value("mitmcache_upstream_state_seconds", ("upstream", world.Authority)) >= 0);
    }

    private static readonly (string Name, string Type)[] s_families =
    [
        ("mitmcache_cache_entries", "gauge"),
        ("mitmcache_cache_max_size_bytes", "gauge"),
        ("mitmcache_cache_read_bytes_total", "counter"),
        ("mitmcache_cache_size_bytes", "gauge"),
        ("mitmcache_certificates_cached", "gauge"),
        ("mitmcache_certificates_minted_total", "counter"),
        ("mitmcache_client_connections", "gauge"),
        ("mitmcache_client_connections_rejected_total", "counter"),
        ("mitmcache_connections_total", "counter"),
        ("mitmcache_evicted_bytes_total", "counter"),
        ("mitmcache_evictions_total", "counter"),
        ("mitmcache_fills_completed_total", "counter"),
        ("mitmcache_fills_in_flight", "gauge"),
        ("mitmcache_fills_total", "counter"),
        ("mitmcache_requests_total", "counter"),
        ("mitmcache_served_bytes_total", "counter"),
        ("mitmcache_upstream_bytes_total", "counter"),
        ("mitmcache_upstream_errors_total", "counter"),
        ("mitmcache_upstream_state_seconds", "gauge"),
        ("mitmcache_upstream_up", "gauge"),
    ];

    private static async Task<(string? ContentType, string Text)> ScrapeAsync(HttpClient http, string proxyUrl)
    {
        using var response = await http.GetAsync($"{proxyUrl}/metrics");
        return (response.Content.Headers.ContentType?.ToString(), await response.Content.ReadAsStringAsync());
    }

    private static bool BothPullsCounted(PrometheusText metrics, (string, string) registry) =>
        metrics.Sum("mitmcache_requests_total", registry, ("kind", "blob")) >= 6 &&
        metrics.Sum("mitmcache_requests_total", registry, ("kind", "manifest")) >= 2 &&
        metrics.Sum("mitmcache_requests_total", registry, ("kind", "ping")) >= 2 &&
        metrics.Value("mitmcache_fills_in_flight") == 0;

    [GeneratedRegex(@"^mitmcache_[a-z][a-z0-9_]*[a-z0-9]\z")]
    private static partial Regex ConventionalName();
}
