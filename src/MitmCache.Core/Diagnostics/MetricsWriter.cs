using System.Globalization;
using System.Text;
using MitmCache.Caching;
using MitmCache.Certificates;
using MitmCache.Configuration;

namespace MitmCache.Diagnostics;

/// <summary>
/// Renders all counters in the Prometheus text exposition format (version 0.0.4). Names follow the
/// Prometheus conventions: <c>mitmcache_</c> prefix, base units, <c>_total</c> for counters, <c>_bytes</c>
/// for sizes. Label sets that are known in advance are always written, zeros included, so a dashboard
/// sees a series before its first event.
/// </summary>
internal sealed class MetricsWriter(ProxyMetrics proxy, CacheMetrics cache, BlobCache blobs, LeafCertificateCache leaves, ProxySettings settings, Tunneling.ConnectionLimiter limiter)
{
    private static readonly string[] s_evictionReasons = [CacheMetrics.EvictedForSize, CacheMetrics.EvictedByPrune, CacheMetrics.EvictedAsCorrupt];

    public void Write(StringBuilder output)
    {
        Family(output, "mitmcache_requests_total", "counter", "Registry requests by registry, kind (blob, manifest, ping, other) and result (hit, miss, stale, coalesced, forwarded, bypass, refused, rejected, error).");
        foreach (var ((registry, kind, result), value) in cache.Requests.OrderBy(r => r.Key))
        {
            Sample(output, "mitmcache_requests_total", value, ("registry", registry), ("kind", kind), ("result", result));
        }

        Family(output, "mitmcache_served_bytes_total", "counter", "Registry response bodies sent to clients, by source: cache (hit, stale) or upstream (miss, coalesced, forwarded, bypass).");
        foreach (var source in new[] { "cache", "upstream" })
        {
            Sample(output, "mitmcache_served_bytes_total", cache.ServedBytes.GetValueOrDefault(source), ("source", source));
        }

        Family(output, "mitmcache_cache_read_bytes_total", "counter", "Bytes streamed to clients from cache files, committed or still being filled.");
        Sample(output, "mitmcache_cache_read_bytes_total", cache.BytesFromCache);
        Family(output, "mitmcache_upstream_bytes_total", "counter", "Blob bytes fetched from upstreams into the cache.");
        Sample(output, "mitmcache_upstream_bytes_total", cache.BytesFromUpstream);

        Family(output, "mitmcache_upstream_errors_total", "counter", "Upstream failures by class (connect, timeout, HTTP status, truncated, digestmismatch, ...).");
        foreach (var (kind, value) in cache.UpstreamErrors.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            Sample(output, "mitmcache_upstream_errors_total", value, ("class", kind));
        }

        Family(output, "mitmcache_fills_total", "counter", "Upstream blob fills started.");
        Sample(output, "mitmcache_fills_total", cache.FillsStarted);
        Family(output, "mitmcache_fills_completed_total", "counter", "Upstream blob fills finished, by outcome.");
        foreach (var outcome in Enum.GetValues<FillOutcome>())
        {
            Sample(output, "mitmcache_fills_completed_total", cache.FillOutcomes.GetValueOrDefault(outcome), ("outcome", CacheMetrics.Label(outcome)));
        }

        Family(output, "mitmcache_fills_in_flight", "gauge", "Blob fills in progress.");
        Sample(output, "mitmcache_fills_in_flight", blobs.InFlightCount);

        Family(output, "mitmcache_cache_size_bytes", "gauge", "Bytes held in the cache.");
        Sample(output, "mitmcache_cache_size_bytes", blobs.TotalBytes);
        Family(output, "mitmcache_cache_max_size_bytes", "gauge", "The cache size cap (--max-cache-size); eviction brings the cache to 90% of it.");
        Sample(output, "mitmcache_cache_max_size_bytes", settings.MaxCacheBytes);
        var counts = blobs.Index.CountBlobs();
        Family(output, "mitmcache_cache_entries", "gauge", "Entries held in the cache, by kind: blob (layers, configs) or manifest (manifests and indexes).");
        Sample(output, "mitmcache_cache_entries", counts.Others, ("kind", "blob"));
        Sample(output, "mitmcache_cache_entries", counts.Manifests, ("kind", "manifest"));

        Family(output, "mitmcache_evictions_total", "counter", "Blobs removed from the cache, by reason: size (over the cap), prune (cache prune), corrupt (cache verify --delete).");
        foreach (var reason in s_evictionReasons)
        {
            Sample(output, "mitmcache_evictions_total", cache.EvictionsByReason.GetValueOrDefault(reason).Count, ("reason", reason));
        }

        Family(output, "mitmcache_evicted_bytes_total", "counter", "Bytes removed from the cache, by reason.");
        foreach (var reason in s_evictionReasons)
        {
            Sample(output, "mitmcache_evicted_bytes_total", cache.EvictionsByReason.GetValueOrDefault(reason).Bytes, ("reason", reason));
        }

        Family(output, "mitmcache_certificates_minted_total", "counter", "Leaf certificates minted.");
        Sample(output, "mitmcache_certificates_minted_total", leaves.MintedCount);
        Family(output, "mitmcache_certificates_cached", "gauge", "Leaf certificates held in the leaf cache.");
        Sample(output, "mitmcache_certificates_cached", leaves.Count);

        Family(output, "mitmcache_connections_total", "counter", "CONNECT requests by decision: intercept (TLS terminated), tunnel (relayed blind) or refuse.");
        Sample(output, "mitmcache_connections_total", proxy.Intercepted, ("decision", "intercept"));
        Sample(output, "mitmcache_connections_total", proxy.Tunnelled, ("decision", "tunnel"));
        Sample(output, "mitmcache_connections_total", proxy.Refused, ("decision", "refuse"));
        Family(output, "mitmcache_client_connections", "gauge", "Client connections open now (the count --max-connections caps).");
        Sample(output, "mitmcache_client_connections", limiter.Open);
        Family(output, "mitmcache_client_connections_rejected_total", "counter", "Client connections refused with 503 by a connection cap.");
        Sample(output, "mitmcache_client_connections_rejected_total", proxy.OverTotalLimit, ("limit", "total"));
        Sample(output, "mitmcache_client_connections_rejected_total", proxy.OverClientLimit, ("limit", "per_client"));
    }

    private static void Family(StringBuilder output, string name, string type, string help) =>
        output.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n')
              .Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

    private static void Sample(StringBuilder output, string name, long value, params (string Name, string Value)[] labels)
    {
        output.Append(name);
        if (labels.Length > 0)
        {
            output.Append('{');
            for (var i = 0; i < labels.Length; i++)
            {
                if (i > 0)
                {
                    output.Append(',');
                }

                var escaped = labels[i].Value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
                output.Append(labels[i].Name).Append("=\"").Append(escaped).Append('"');
            }

            output.Append('}');
        }

        output.Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
    }
}
