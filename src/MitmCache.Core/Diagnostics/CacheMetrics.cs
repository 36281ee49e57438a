using System.Collections.Concurrent;
using MitmCache.Caching;

namespace MitmCache.Diagnostics;

/// <summary>Cache counters: results per registry and kind, bytes by source, fills and evictions.</summary>
internal sealed class CacheMetrics
{
    /// <summary>Evicted to stay under <c>--max-cache-size</c>.</summary>
    public const string EvictedForSize = "size";

    /// <summary>Removed by <c>mitmcache cache prune</c>.</summary>
    public const string EvictedByPrune = "prune";

    /// <summary>Removed by <c>mitmcache cache verify --delete</c>: the file no longer matched its digest.</summary>
    public const string EvictedAsCorrupt = "corrupt";

    private readonly ConcurrentDictionary<(string Registry, string Kind, string Result), long> _requests = new();
    private readonly ConcurrentDictionary<string, long> _upstreamErrors = new();
    private readonly ConcurrentDictionary<string, long> _servedBytes = new();
    private readonly ConcurrentDictionary<FillOutcome, long> _fillOutcomes = new();
    private readonly ConcurrentDictionary<string, (long Count, long Bytes)> _evictions = new();
    private long _bytesFromCache;
    private long _bytesFromUpstream;
    private long _fillsStarted;

    public IReadOnlyDictionary<(string Registry, string Kind, string Result), long> Requests => _requests;
    public IReadOnlyDictionary<string, long> UpstreamErrors => _upstreamErrors;

    /// <summary>Registry response bodies sent to clients, by source (<c>cache</c> or <c>upstream</c>).</summary>
    public IReadOnlyDictionary<string, long> ServedBytes => _servedBytes;

    /// <summary>Finished fills by outcome.</summary>
    public IReadOnlyDictionary<FillOutcome, long> FillOutcomes => _fillOutcomes;

    /// <summary>Blobs removed from the cache, by reason (<see cref="EvictedForSize"/>, <see cref="EvictedByPrune"/>, <see cref="EvictedAsCorrupt"/>).</summary>
    public IReadOnlyDictionary<string, (long Count, long Bytes)> EvictionsByReason => _evictions;

    /// <summary>Blobs removed for any reason.</summary>
    public long Evictions => _evictions.Values.Sum(e => e.Count);

    /// <summary>Bytes removed for any reason.</summary>
    public long EvictedBytes => _evictions.Values.Sum(e => e.Bytes);

    /// <summary>Bytes streamed from cache files, committed or still filling (so coalesced readers count too).</summary>
    public long BytesFromCache => Interlocked.Read(ref _bytesFromCache);
    public long BytesFromUpstream => Interlocked.Read(ref _bytesFromUpstream);
    public long FillsStarted => Interlocked.Read(ref _fillsStarted);

    /// <summary>
    /// One registry request. Its body bytes count as served from the cache when the result says the
    /// cache answered alone (<c>hit</c>, <c>stale</c>), and from upstream when upstream had to be asked
    /// for them (<c>miss</c>, <c>coalesced</c> into someone's fill, <c>forwarded</c>, <c>bypass</c> when the disk failed).
    /// </summary>
    public void Request(string registry, string kind, string result, long bytes = 0)
    {
        _requests.AddOrUpdate((registry, kind, result), 1, (_, n) => n + 1);
        var source = SourceOf(result);
        if (source is not null && bytes > 0)
        {
            _servedBytes.AddOrUpdate(source, bytes, (_, n) => n + bytes);
        }
    }

    /// <summary>Where the body of a request with this result came from; null for errors and refusals.</summary>
    public static string? SourceOf(string result) => result switch
    {
        "hit" or "stale" => "cache",
        "miss" or "coalesced" or "forwarded" or "bypass" => "upstream",
        _ => null,
    };

    public void UpstreamError(string kind) => _upstreamErrors.AddOrUpdate(kind, 1, (_, n) => n + 1);

    public void CacheBytes(long bytes) => Interlocked.Add(ref _bytesFromCache, bytes);

    public void UpstreamBytes(long bytes) => Interlocked.Add(ref _bytesFromUpstream, bytes);

    public void FillStarted() => Interlocked.Increment(ref _fillsStarted);

    public void FillEnded(FillOutcome outcome)
    {
        _fillOutcomes.AddOrUpdate(outcome, 1, (_, n) => n + 1);
        if (outcome is not (FillOutcome.Committed or FillOutcome.Abandoned))
        {
            UpstreamError(Label(outcome));
        }
    }

    /// <summary><c>DigestMismatch</c> → <c>digestmismatch</c>, for metric labels (as upstream error classes always were).</summary>
    public static string Label(FillOutcome outcome) => outcome.ToString().ToLowerInvariant();

    public void Evicted(long bytes, string reason = EvictedForSize) =>
        _evictions.AddOrUpdate(reason, (1, bytes), (_, old) => (old.Count + 1, old.Bytes + bytes));
}
