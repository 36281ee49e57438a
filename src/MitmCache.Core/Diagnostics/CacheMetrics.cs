using System.Diagnostics.Metrics;
using MitmCache.Caching;

using MitmCache.Registry;

namespace MitmCache.Diagnostics;

/// <summary>
/// Cache instruments: results per registry and kind, bytes by source, fills and evictions (see
/// <see cref="ProxyMeter"/> for how to add one). Instruments are write-only, so the few sums that
/// <c>cache stats</c> shows of the running proxy are kept beside them.
/// </summary>
internal sealed class CacheMetrics
{
    /// <summary>Evicted to stay under <c>--max-cache-size</c>.</summary>
    public const string EvictedForSize = "size";

    /// <summary>Removed by <c>mitmcache cache prune</c>.</summary>
    public const string EvictedByPrune = "prune";

    /// <summary>Removed by <c>mitmcache cache verify --delete</c>: the file no longer matched its digest.</summary>
    public const string EvictedAsCorrupt = "corrupt";

    private static readonly KeyValuePair<string, object?> s_fromCache = new("source", "cache");
    private static readonly KeyValuePair<string, object?> s_fromUpstream = new("source", "upstream");

    private readonly Counter<long> _requests;
    private readonly Counter<long> _servedBytes;
    private readonly Counter<long> _cacheReadBytes;
    private readonly Counter<long> _upstreamBytes;
    private readonly Counter<long> _upstreamErrors;
    private readonly Counter<long> _fills;
    private readonly Counter<long> _fillsCompleted;
    private readonly Counter<long> _evictions;
    private readonly Counter<long> _evictedBytes;

    private long _requestCount;
    private long _answeredFromCache;
    private long _answeredFromUpstream;
    private long _servedFromCache;
    private long _servedFromUpstream;
    private long _evictionCount;
    private long _evictedByteCount;

    /// <summary>Instruments that nothing exports (the CLI on a data directory, unit tests).</summary>
    public CacheMetrics()
        : this(new Meter(ProxyMeter.Name))
    {
    }

    public CacheMetrics(Meter meter)
    {
        _requests = meter.CreateCounter<long>("mitmcache_requests_total", "{request}",
            "Registry requests by registry, kind (blob, manifest, ping, other) and result (hit, miss, stale, coalesced, forwarded, bypass, refused, rejected, error).");
        _servedBytes = meter.CreateCounter<long>("mitmcache_served_bytes_total", "By",
            "Registry response bodies sent to clients, by source: cache (hit, stale) or upstream (miss, coalesced, forwarded, bypass).");
        _cacheReadBytes = meter.CreateCounter<long>("mitmcache_cache_read_bytes_total", "By",
            "Bytes streamed to clients from cache files, committed or still being filled.");
        _upstreamBytes = meter.CreateCounter<long>("mitmcache_upstream_bytes_total", "By", "Blob bytes fetched from upstreams into the cache.");
        _upstreamErrors = meter.CreateCounter<long>("mitmcache_upstream_errors_total", "{error}",
            "Upstream failures by class (connect, timeout, HTTP status, truncated, digestmismatch, ...).");
        _fills = meter.CreateCounter<long>("mitmcache_fills_total", "{fill}", "Upstream blob fills started.");
        _fillsCompleted = meter.CreateCounter<long>("mitmcache_fills_completed_total", "{fill}", "Upstream blob fills finished, by outcome.");
        _evictions = meter.CreateCounter<long>("mitmcache_evictions_total", "{blob}",
            "Blobs removed from the cache, by reason: size (over the cap), prune (cache prune), corrupt (cache verify --delete).");
        _evictedBytes = meter.CreateCounter<long>("mitmcache_evicted_bytes_total", "By", "Bytes removed from the cache, by reason.");

        // Every label set known in advance, from the start.
        _servedBytes.Add(0, s_fromCache);
        _servedBytes.Add(0, s_fromUpstream);
        _cacheReadBytes.Add(0);
        _upstreamBytes.Add(0);
        _fills.Add(0);
        foreach (var outcome in Enum.GetValues<FillOutcome>())
        {
            _fillsCompleted.Add(0, new KeyValuePair<string, object?>("outcome", Label(outcome)));
            if (IsUpstreamError(outcome))
            {
                _upstreamErrors.Add(0, new KeyValuePair<string, object?>("class", Label(outcome)));
            }
        }

        _upstreamErrors.Add(0, new KeyValuePair<string, object?>("class", "connect"));
        _upstreamErrors.Add(0, new KeyValuePair<string, object?>("class", "timeout"));
        foreach (var reason in (string[])[EvictedForSize, EvictedByPrune, EvictedAsCorrupt])
        {
            _evictions.Add(0, new KeyValuePair<string, object?>("reason", reason));
            _evictedBytes.Add(0, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    /// <summary>Registry requests of any kind and result.</summary>
    public long Requests => Interlocked.Read(ref _requestCount);

    /// <summary>Blob and manifest requests the cache answered alone (<c>hit</c>, <c>stale</c>).</summary>
    public long AnsweredFromCache => Interlocked.Read(ref _answeredFromCache);

    /// <summary>Blob and manifest requests that needed upstream (<c>miss</c>, <c>coalesced</c>, <c>forwarded</c>, <c>bypass</c>).</summary>
    public long AnsweredFromUpstream => Interlocked.Read(ref _answeredFromUpstream);

    /// <summary>Registry response body bytes whose requests the cache answered alone.</summary>
    public long ServedFromCache => Interlocked.Read(ref _servedFromCache);

    /// <summary>Registry response body bytes whose requests needed upstream.</summary>
    public long ServedFromUpstream => Interlocked.Read(ref _servedFromUpstream);

    /// <summary>Blobs removed for any reason.</summary>
    public long Evictions => Interlocked.Read(ref _evictionCount);

    /// <summary>Bytes removed for any reason.</summary>
    public long EvictedBytes => Interlocked.Read(ref _evictedByteCount);

    /// <summary>
    /// One registry request. Its body bytes count as served from the cache when the result says the
    /// cache answered alone (<c>hit</c>, <c>stale</c>), and from upstream when upstream had to be asked
    /// for them (<c>miss</c>, <c>coalesced</c> into someone's fill, <c>forwarded</c>, <c>bypass</c> when the disk failed).
    /// </summary>
    public void Request(string registry, string kind, RequestResult result, long bytes = 0)
    {
        _requests.Add(1, new("registry", registry), new("kind", kind), new("result", result.Label()));
        Interlocked.Increment(ref _requestCount);
        var source = result.Source();
        if (source is null)
        {
            return;
        }

        var fromCache = source == "cache";
        if (kind is "blob" or "manifest")
        {
            Interlocked.Increment(ref fromCache ? ref _answeredFromCache : ref _answeredFromUpstream);
        }

        if (bytes > 0)
        {
            _servedBytes.Add(bytes, fromCache ? s_fromCache : s_fromUpstream);
            Interlocked.Add(ref fromCache ? ref _servedFromCache : ref _servedFromUpstream, bytes);
        }
    }

    public void UpstreamError(string kind) => _upstreamErrors.Add(1, new KeyValuePair<string, object?>("class", kind));

    public void CacheBytes(long bytes) => _cacheReadBytes.Add(bytes);

    public void UpstreamBytes(long bytes) => _upstreamBytes.Add(bytes);

    public void FillStarted() => _fills.Add(1);

    public void FillEnded(FillOutcome outcome)
    {
        _fillsCompleted.Add(1, new KeyValuePair<string, object?>("outcome", Label(outcome)));
        if (IsUpstreamError(outcome))
        {
            UpstreamError(Label(outcome));
        }
    }

    /// <summary><c>DigestMismatch</c> → <c>digestmismatch</c>, for metric labels (as upstream error classes always were).</summary>
    public static string Label(FillOutcome outcome) => outcome.ToString().ToLowerInvariant();

    public void Evicted(long bytes, string reason = EvictedForSize)
    {
        var tag = new KeyValuePair<string, object?>("reason", reason);
        _evictions.Add(1, tag);
        _evictedBytes.Add(bytes, tag);
        Interlocked.Increment(ref _evictionCount);
        Interlocked.Add(ref _evictedByteCount, bytes);
    }

    private static bool IsUpstreamError(FillOutcome outcome) => outcome is not (FillOutcome.Committed or FillOutcome.Abandoned);
}
