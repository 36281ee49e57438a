using System.Diagnostics.Metrics;
using MitmCache.Upstream;

namespace MitmCache.Diagnostics;

/// <summary>
/// The cluster tier as a child sees it (docs/cluster.md), per parent (<c>parent</c> label: its <c>host:port</c> as
/// given to <c>--upstream-proxy</c>, a list the operator bounds): up or down, degraded, and the requests, failures and
/// body bytes of <see cref="ParentCounts"/>. Observable: read at each scrape from state the tier keeps anyway.
/// A proxy without parents has none of these series.
/// </summary>
internal sealed class ParentMetrics
{
    public ParentMetrics(Meter meter, ParentTier tier)
    {
        var labels = tier.States.Select(s => new KeyValuePair<string, object?>("parent", s.Authority)).ToArray();
        IEnumerable<Measurement<long>> Each(Func<int, long> value) => labels.Select((label, i) => new Measurement<long>(value(i), label));

        meter.CreateObservableGauge("mitmcache_parent_up", () => Each(i => tier.States[i].IsDown ? 0 : 1), "{parent}",
            "1 while the parent answers, 0 while it is known down (skipped without being dialled until its /readyz answers a probe).");
        meter.CreateObservableGauge("mitmcache_parent_degraded", () => Each(i => tier.States[i].Degraded is null ? 0 : 1), "{parent}",
            "1 while the parent's /readyz says it is degraded itself (its storage, say): it is tried after the others.");
        meter.CreateObservableCounter("mitmcache_parent_requests_total", () => Each(i => tier.Counts[i].Requests), "{request}",
            "Requests sent to the parent, Range requests that resume a broken blob body included.");
        meter.CreateObservableCounter("mitmcache_parent_failures_total", () => Each(i => tier.Counts[i].Failures), "{failure}",
            "Requests the parent failed: no connection, its own 5xx, no answer in time, a body that broke or stalled.");
        meter.CreateObservableCounter("mitmcache_parent_bytes_total", () => Each(i => tier.Counts[i].Bytes), "By",
            "Body bytes received from the parent for GETs.");
    }
}
