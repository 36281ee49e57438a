using System.Collections.Concurrent;
using MitmCache.Caching;

namespace MitmCache.Diagnostics;

/// <summary>Cache counters: results per registry and kind, bytes by source, fills and evictions.</summary>
internal sealed class CacheMetrics
{
    private readonly ConcurrentDictionary<(string Registry, string Kind, string Result), long> _requests = new();
    private readonly ConcurrentDictionary<string, long> _upstreamErrors = new();
    private long _bytesFromCache;
    private long _bytesFromUpstream;
    private long _fillsStarted;
    private long _evictions;
    private long _evictedBytes;

    public IReadOnlyDictionary<(string Registry, string Kind, string Result), long> Requests => _requests;
    public IReadOnlyDictionary<string, long> UpstreamErrors => _upstreamErrors;
    public long BytesFromCache => Interlocked.Read(ref _bytesFromCache);
    public long BytesFromUpstream => Interlocked.Read(ref _bytesFromUpstream);
    public long FillsStarted => Interlocked.Read(ref _fillsStarted);
    public long Evictions => Interlocked.Read(ref _evictions);
    public long EvictedBytes => Interlocked.Read(ref _evictedBytes);

    public void Request(string registry, string kind, string result) =>
        _requests.AddOrUpdate((registry, kind, result), 1, (_, n) => n + 1);

    public void UpstreamError(string kind) => _upstreamErrors.AddOrUpdate(kind, 1, (_, n) => n + 1);

    public void CacheBytes(long bytes) => Interlocked.Add(ref _bytesFromCache, bytes);

    public void UpstreamBytes(long bytes) => Interlocked.Add(ref _bytesFromUpstream, bytes);

    public void FillStarted() => Interlocked.Increment(ref _fillsStarted);

    public void FillEnded(FillOutcome outcome)
    {
        if (outcome is not (FillOutcome.Committed or FillOutcome.Abandoned))
        {
            UpstreamError(outcome.ToString().ToLowerInvariant());
        }
    }

    public void Evicted(long bytes)
    {
        Interlocked.Increment(ref _evictions);
        Interlocked.Add(ref _evictedBytes, bytes);
    }
}
