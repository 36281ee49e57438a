using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Core.Tests.Diagnostics;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

/// <summary>
/// The cache over a temp directory with a fake clock, reopened as a restart does. The tests that use it are split
/// as the source is: one class a file of Caching/ (BlobCache, FillPump, BlobCommits, CacheSize, BlobRepair, StorageHealth).
/// </summary>
public abstract class BlobCacheTestBase : IDisposable
{
    private protected const long SmallCap = 1_000;
    private protected const long LargeCap = 1L << 30;

    // LiteDB hands times back as local (see CacheIndexTests); a day between events keeps LRU order right in any zone.
    private protected static readonly TimeSpan s_eventGap = TimeSpan.FromDays(1);
    private protected static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private protected readonly TempDirectory _directory = new();
    private protected readonly FakeTimeProvider _time = new();
    private protected CacheMetrics _metrics = new();
    private protected MeterTotals? _totals;
    private protected TestIndex? _index;
    private protected BlobCache _cache;

    protected BlobCacheTestBase()
    {
        _cache = Open(LargeCap);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _index?.Dispose();
        _totals?.Dispose();
        _directory.Dispose();
    }

    private protected string TempRoot => _directory.Combine("tmp");

    /// <summary>Opens the index and the cache over the directory; an index still open (the cache before a restart) is closed first.</summary>
    private protected BlobCache Open(long cap)
    {
        _index?.Dispose();
        _index = new TestIndex(_directory.Combine("index.db"), _time);
        var meter = new Meter(ProxyMeter.Name);
        _totals?.Dispose();
        _totals = new MeterTotals(meter);
        _metrics = new CacheMetrics(meter);
        return new BlobCache(TestSettings.Create(_directory.Path, cap), _time, _metrics, NullLogger<BlobCache>.Instance, _index.Database, _index.Blobs);
    }

    /// <summary>Closes the cache and opens a new one over the same directory, as a restart does.</summary>
    private protected void Reopen(long cap = LargeCap)
    {
        _cache.Dispose();
        _cache = Open(cap);
    }

    private protected static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private protected Digest Store(int length, int seed)
    {
        var bytes = Bytes(length, seed);
        var digest = Digest.Compute(bytes);
        Assert.True(_cache.StoreSmall(digest, bytes, "application/octet-stream"));
        _time.Advance(s_eventGap);
        return digest;
    }

    /// <summary>An origin's 200 body, as upstream's would be: its length announced unless the content has none.</summary>
    private protected static OriginBody Body(HttpContent content, string mediaType, long? contentLength = null)
    {
        if (contentLength is not null)
        {
            content.Headers.ContentLength = contentLength;
        }

        return new OriginBody(content.ReadAsStream(), 0, content.Headers.ContentLength, mediaType, ProvesAccess: true, content);
    }
}
