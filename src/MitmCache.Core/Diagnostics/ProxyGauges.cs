using System.Diagnostics.Metrics;
using MitmCache.Caching;
using MitmCache.Certificates;
using MitmCache.Configuration;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Diagnostics;

/// <summary>
/// Observable instruments over state that other types keep (the cache's size and entries, fills in
/// flight, leaf certificates, open client connections, upstream health): read at each collection (a scrape, a
/// <c>dotnet-counters</c> interval), never on a request path.
/// </summary>
internal sealed class ProxyGauges
{
    private static readonly KeyValuePair<string, object?> s_blobs = new("kind", "blob");
    private static readonly KeyValuePair<string, object?> s_manifests = new("kind", "manifest");

    public ProxyGauges(Meter meter, BlobCache cache, BlobRecords blobs, LeafCertificateCache leaves, ConnectionLimiter limiter, UpstreamHealth health, ProxySettings settings)
    {
        meter.CreateObservableGauge("mitmcache_fills_in_flight", () => cache.InFlightCount, "{fill}", "Blob fills in progress.");
        meter.CreateObservableGauge("mitmcache_cache_size_bytes", () => cache.TotalBytes, "By", "Bytes held in the cache.");
        meter.CreateObservableGauge("mitmcache_cache_max_size_bytes", () => settings.MaxCacheBytes, "By",
            "The cache size cap (--max-cache-size); eviction brings the cache to 90% of it.");
        meter.CreateObservableGauge("mitmcache_cache_entries", () => Entries(blobs), "{entry}",
            "Entries held in the cache, by kind: blob (layers, configs) or manifest (manifests and indexes).");
        meter.CreateObservableCounter("mitmcache_certificates_minted_total", () => leaves.MintedCount, "{certificate}", "Leaf certificates minted.");
        meter.CreateObservableGauge("mitmcache_certificates_cached", () => leaves.Count, "{certificate}", "Leaf certificates held in the leaf cache.");
        meter.CreateObservableGauge("mitmcache_client_connections", () => limiter.Open, "{connection}",
            "Client connections open now (the count --max-connections caps).");

        // Labelled by upstream host: registries and token hosts are configured, CDN hosts are few, and at most
        // UpstreamHealth.MaxKnown are known at once.
        meter.CreateObservableGauge("mitmcache_upstream_up", () => health.Known.Select(u => new Measurement<int>(u.IsDown ? 0 : 1, Upstream(u))), "{upstream}",
            "1 while the upstream host answers, 0 while it is known down (answered from the cache without asking it, until a probe gets an answer).");
        meter.CreateObservableGauge("mitmcache_upstream_state_seconds", () => health.Known.Select(u => new Measurement<long>((long)health.TimeInState(u).TotalSeconds, Upstream(u))), "s",
            "Seconds the upstream host has been in its current state (up since first contact or since it answered again, or down).");
    }

    private static KeyValuePair<string, object?> Upstream(UpstreamState upstream) => new("upstream", upstream.Authority);

    private static Measurement<long>[] Entries(BlobRecords blobs)
    {
        var counts = blobs.CountBlobs(); // kept in step by the index's writes: no query per scrape
        return [new(counts.Others, s_blobs), new(counts.Manifests, s_manifests)];
    }
}
