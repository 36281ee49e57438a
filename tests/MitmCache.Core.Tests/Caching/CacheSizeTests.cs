using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

public sealed class CacheSizeTests : BlobCacheTestBase
{
    [Fact]
    public void EnsureCapacity_UnderCap_EvictsNothing()
    {
        Reopen(SmallCap);
        Store(300, 1);
        Store(300, 2);

        Assert.Equal(0, _cache.EnsureCapacity());
        Assert.Equal(600, _cache.TotalBytes);
    }

    [Fact]
    public void StoreSmall_OverCap_EvictsLeastRecentlyUsedDownToNinetyPercent()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        var b = Store(300, 2);
        var c = Store(300, 3);

        var d = Store(300, 4); // 1200 > 1000: evict the oldest until <= 900

        Assert.Null(_cache.TryGet(a));
        Assert.NotNull(_cache.TryGet(b));
        Assert.NotNull(_cache.TryGet(c));
        Assert.NotNull(_cache.TryGet(d));
        Assert.Equal(900, _cache.TotalBytes);
        Assert.Equal(1, _metrics.Evictions);
        Assert.Equal(300, _metrics.EvictedBytes);
        Assert.False(File.Exists(_directory.Combine("blobs", a.RelativePath)));
    }

    [Fact]
    public void StoreSmall_OverCapAfterTouch_EvictsTheUntouchedBlobFirst()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        var b = Store(300, 2);
        var c = Store(300, 3);
        _cache.Touch(a); // a is now the most recently used

        var d = Store(300, 4);

        Assert.NotNull(_cache.TryGet(a));
        Assert.Null(_cache.TryGet(b));
        Assert.NotNull(_cache.TryGet(c));
        Assert.NotNull(_cache.TryGet(d));
    }

    [Fact]
    public void EnsureCapacity_CapLoweredAtRestart_EvictsByLastAccessIncludingTouches()
    {
        var a = Store(250, 1);
        var b = Store(250, 2);
        var c = Store(250, 3);
        var d = Store(250, 4);
        Reopen(cap: 800); // 1000 bytes now exceed the cap; opening does not evict by itself
        Assert.Equal(1000, _cache.TotalBytes);

        _cache.Touch(a);
        var evicted = _cache.EnsureCapacity(); // target 720: b and c go, a was touched, d is newest

        Assert.Equal(2, evicted);
        Assert.NotNull(_cache.TryGet(a));
        Assert.Null(_cache.TryGet(b));
        Assert.Null(_cache.TryGet(c));
        Assert.NotNull(_cache.TryGet(d));
        Assert.Equal(500, _cache.TotalBytes);
    }

    [Fact]
    public void EnsureCapacity_BlobWithFillInFlight_Skipped()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        var b = Store(300, 2);
        Store(300, 3);
        var (fill, owner) = _cache.JoinOrStart(a);
        Assert.True(owner);

        Store(300, 4);
        _cache.Abandon(fill);

        Assert.NotNull(_cache.TryGet(a));
        Assert.Null(_cache.TryGet(b));
    }

    [Fact]
    public void EnsureCapacity_EvictedBlob_TagsPointingToItDeleted()
    {
        Reopen(SmallCap);
        var a = Store(300, 1);
        _index!.Tags.PutTag(new TagRecord
        {
            TagKey = TagRecord.MakeTagKey("registry.test", "team/app", "latest"),
            AcceptKey = "oci",
            Digest = a.ToString(),
        });
        Store(300, 2);
        Store(300, 3);

        Store(300, 4);

        Assert.Empty(_index!.Tags.FindTags("registry.test", "team/app", "latest"));
    }

    [Fact]
    public void EnsureCapacity_EvictedBlob_ItsLinksDeleted_OthersKept()
    {
        // Links used to outlive their blob: an evicted blob fetched again through another repository was then
        // served under the old ones too, and a long-lived node's link collection only ever grew.
        Reopen(SmallCap);
        var a = Store(300, 1);
        _index!.Links.Link("registry.test", "team/app", a, _cache.Now);
        _index.Links.Link("registry.test", "team/other", a, _cache.Now);
        var b = Store(300, 2);
        _index.Links.Link("registry.test", "team/app", b, _cache.Now);
        Store(300, 3);

        Store(300, 4);

        Assert.Null(_cache.TryGet(a));
        Assert.Empty(_index.Links.LinksOf(a));
        Assert.False(_index.Links.IsLinked("registry.test", "team/app", a));
        Assert.NotNull(_cache.TryGet(b));
        Assert.True(_index.Links.IsLinked("registry.test", "team/app", b));
    }

    [Fact]
    public async Task EnsureCapacity_EvictedBlobHeldOpenByReader_StaysReadable()
    {
        Reopen(SmallCap);
        var bytes = Bytes(300, 1);
        var a = Digest.Compute(bytes);
        _cache.StoreSmall(a, bytes, "application/octet-stream");
        _time.Advance(s_eventGap);
        var path = _cache.TryGet(a)!.Path;
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);

        Store(300, 2);
        Store(300, 3);
        Store(300, 4);
        Assert.False(File.Exists(path));

        var output = new RecordingStream();
        var (outcome, sent) = await BlobReader.CopyAsync(handle, 0, bytes.Length, output, null, CancellationToken.None);

        Assert.Equal(ReadOutcome.Completed, outcome);
        Assert.Equal(bytes.Length, sent);
        Assert.Equal(bytes, output.ToArray());
    }
}
