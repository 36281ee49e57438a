using System.Globalization;
using System.Text;
using MitmCache.Caching;
using MitmCache.Certificates;

namespace MitmCache.Diagnostics;

/// <summary>Renders all counters in the Prometheus text exposition format (version 0.0.4).</summary>
internal sealed class MetricsWriter(ProxyMetrics proxy, CacheMetrics cache, BlobCache blobs, LeafCertificateCache leaves)
{
    public void Write(StringBuilder output)
    {
        Family(output, "mitmcache_requests_total", "counter", "Registry requests by registry, kind (blob, manifest, ping, token, other) and result (hit, miss, stale, coalesced, error, forwarded).");
        foreach (var ((registry, kind, result), value) in cache.Requests.OrderBy(r => r.Key))
        {
            Sample(output, "mitmcache_requests_total", value, ("registry", registry), ("kind", kind), ("result", result));
        }

        Family(output, "mitmcache_served_bytes_total", "counter", "Body bytes sent to clients, by source.");
        Sample(output, "mitmcache_served_bytes_total", cache.BytesFromCache, ("source", "cache"));
        Family(output, "mitmcache_upstream_bytes_total", "counter", "Blob bytes fetched from upstreams into the cache.");
        Sample(output, "mitmcache_upstream_bytes_total", cache.BytesFromUpstream);

        Family(output, "mitmcache_upstream_errors_total", "counter", "Upstream failures by class.");
        foreach (var (kind, value) in cache.UpstreamErrors.OrderBy(e => e.Key))
        {
            Sample(output, "mitmcache_upstream_errors_total", value, ("class", kind));
        }

        Family(output, "mitmcache_fills_total", "counter", "Upstream blob fills started.");
        Sample(output, "mitmcache_fills_total", cache.FillsStarted);
        Family(output, "mitmcache_fills_in_flight", "gauge", "Blob fills in progress.");
        Sample(output, "mitmcache_fills_in_flight", blobs.InFlightCount);
        Family(output, "mitmcache_cache_size_bytes", "gauge", "Bytes held in the cache.");
        Sample(output, "mitmcache_cache_size_bytes", blobs.TotalBytes);
        Family(output, "mitmcache_cache_blobs", "gauge", "Blobs and manifests held in the cache.");
        Sample(output, "mitmcache_cache_blobs", blobs.Index.BlobCount());
        Family(output, "mitmcache_evictions_total", "counter", "Blobs evicted to stay under the size cap.");
        Sample(output, "mitmcache_evictions_total", cache.Evictions);
        Family(output, "mitmcache_evicted_bytes_total", "counter", "Bytes evicted to stay under the size cap.");
        Sample(output, "mitmcache_evicted_bytes_total", cache.EvictedBytes);
        Family(output, "mitmcache_certificates_minted_total", "counter", "Leaf certificates minted.");
        Sample(output, "mitmcache_certificates_minted_total", leaves.MintedCount);
        Family(output, "mitmcache_connections_total", "counter", "CONNECT requests by decision.");
        Sample(output, "mitmcache_connections_total", proxy.Intercepted, ("decision", "intercept"));
        Sample(output, "mitmcache_connections_total", proxy.Tunnelled, ("decision", "tunnel"));
        Sample(output, "mitmcache_connections_total", proxy.Refused, ("decision", "refuse"));
    }

    private static void Family(StringBuilder output, string name, string type, string help) =>
        output.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n')
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
