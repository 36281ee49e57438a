using MitmCache.Registry;
using System.Diagnostics.Metrics;
using MitmCache.Caching;
using MitmCache.Diagnostics;

namespace MitmCache.Core.Tests.Diagnostics;

public sealed class CacheMetricsTests : IDisposable
{
    private readonly Meter _meter = new(ProxyMeter.Name);
    private readonly MeterTotals _totals;
    private readonly CacheMetrics _metrics;

    public CacheMetricsTests()
    {
        _totals = new MeterTotals(_meter);
        _metrics = new CacheMetrics(_meter);
    }

    public void Dispose()
    {
        _totals.Dispose();
        _meter.Dispose();
    }

    [Fact]
    public void New_EveryLabelSetKnownInAdvance_RecordedAsZero()
    {
        var series = _totals.Series;

        Assert.Contains("mitmcache_served_bytes_total{source=cache}", series);
        Assert.Contains("mitmcache_served_bytes_total{source=upstream}", series);
        Assert.Contains("mitmcache_cache_read_bytes_total{}", series);
        Assert.Contains("mitmcache_upstream_bytes_total{}", series);
        Assert.Contains("mitmcache_fills_total{}", series);
        Assert.All(Enum.GetValues<FillOutcome>(), o => Assert.Contains($"mitmcache_fills_completed_total{{outcome={CacheMetrics.Label(o)}}}", series));
        Assert.All(["connect", "timeout", "digestmismatch", "truncated"], c => Assert.Contains($"mitmcache_upstream_errors_total{{class={c}}}", series));
        Assert.All(["size", "prune", "corrupt"], r => Assert.Contains($"mitmcache_evictions_total{{reason={r}}}", series));
        Assert.All(["size", "prune", "corrupt"], r => Assert.Contains($"mitmcache_evicted_bytes_total{{reason={r}}}", series));
        Assert.DoesNotContain(series, s => s.StartsWith("mitmcache_requests_total", StringComparison.Ordinal)); // registries are not known in advance
        Assert.Equal(0, _totals.Sum("mitmcache_upstream_errors_total"));
    }

    [Fact]
    public void Request_CountedByRegistryKindAndResult_BytesBySource_AndTheLiveSums()
    {
        _metrics.Request("r.test:5000", "blob", RequestResult.Hit, 100);
        _metrics.Request("r.test:5000", "blob", RequestResult.Hit, 50);
        _metrics.Request("r.test:5000", "manifest", RequestResult.Miss, 10);
        _metrics.Request("r.test:5000", "ping", RequestResult.Forwarded, 3); // bytes count, the answer does not
        _metrics.Request("other.test", "blob", RequestResult.Refused);

        Assert.Equal(2, _totals.Sum("mitmcache_requests_total", ("registry", "r.test:5000"), ("kind", "blob"), ("result", "hit")));
        Assert.Equal(1, _totals.Sum("mitmcache_requests_total", ("registry", "other.test"), ("result", "refused")));
        Assert.Equal(150, _totals.Sum("mitmcache_served_bytes_total", ("source", "cache")));
        Assert.Equal(13, _totals.Sum("mitmcache_served_bytes_total", ("source", "upstream")));
        Assert.Equal(5, _metrics.Requests);
        Assert.Equal(2, _metrics.AnsweredFromCache);
        Assert.Equal(1, _metrics.AnsweredFromUpstream);
        Assert.Equal(150, _metrics.ServedFromCache);
        Assert.Equal(13, _metrics.ServedFromUpstream);
    }

    [Fact]
    public void FillEnded_FailureAlsoCountsAsUpstreamError_CommittedAndAbandonedDoNot()
    {
        _metrics.FillStarted();
        _metrics.FillEnded(FillOutcome.Committed);
        _metrics.FillEnded(FillOutcome.Abandoned);
        _metrics.FillEnded(FillOutcome.DigestMismatch);
        _metrics.UpstreamError("503");

        Assert.Equal(1, _totals.Sum("mitmcache_fills_total"));
        Assert.Equal(1, _totals.Sum("mitmcache_fills_completed_total", ("outcome", "committed")));
        Assert.Equal(1, _totals.Sum("mitmcache_fills_completed_total", ("outcome", "digestmismatch")));
        Assert.Equal(1, _totals.Sum("mitmcache_upstream_errors_total", ("class", "digestmismatch")));
        Assert.Equal(1, _totals.Sum("mitmcache_upstream_errors_total", ("class", "503")));
        Assert.Equal(2, _totals.Sum("mitmcache_upstream_errors_total"));
    }

    [Fact]
    public void Evicted_ByReason_AndTheTotals()
    {
        _metrics.Evicted(300);
        _metrics.Evicted(20, CacheMetrics.EvictedByPrune);

        Assert.Equal(1, _totals.Sum("mitmcache_evictions_total", ("reason", "size")));
        Assert.Equal(300, _totals.Sum("mitmcache_evicted_bytes_total", ("reason", "size")));
        Assert.Equal(20, _totals.Sum("mitmcache_evicted_bytes_total", ("reason", "prune")));
        Assert.Equal(2, _metrics.Evictions);
        Assert.Equal(320, _metrics.EvictedBytes);
    }
}
