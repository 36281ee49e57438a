using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;

namespace MitmCache.Core.Tests.Caching;

/// <remarks>
/// LiteDB returns times as local (see the skipped Kind test), so times are compared in UTC and events
/// are a day apart: more than any UTC offset, so ordering holds in every time zone.
/// </remarks>
public sealed class CacheIndexTests : IDisposable
{
    private static readonly DateTime s_t0 = new(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);

    private readonly TempDirectory _directory = new();
    private readonly CacheIndex _index;

    public CacheIndexTests()
    {
        _index = new CacheIndex(_directory.Combine("index.db"));
    }

    public void Dispose()
    {
        _index.Dispose();
        _directory.Dispose();
    }

    private void Put(string id, long size, DateTime lastAccess) =>
        _index.UpsertBlob(new BlobRecord { Id = id, Size = size, FirstSeen = lastAccess, LastAccess = lastAccess });

    [Fact]
    public void UpsertBlob_ThenFind_RoundTrips()
    {
        Put("sha256:a", 10, s_t0);

        var record = _index.FindBlob("sha256:a");

        Assert.NotNull(record);
        Assert.Equal(10, record.Size);
        Assert.Equal(s_t0, record.LastAccess.ToUniversalTime());
        Assert.Equal(1, _index.CountBlobs().Total);
        Assert.Equal(10, _index.TotalBlobBytes());
    }

    [Fact]
    public void CountBlobs_KeptInStepWithWrites_MatchesAFreshCount()
    {
        const string Manifest = "application/vnd.oci.image.manifest.v1+json";
        Put("sha256:before", 1, s_t0); // written before the first count: found by the count itself
        Assert.Equal(new BlobCounts(1, 0), _index.CountBlobs());

        Put("sha256:layer", 10, s_t0);
        _index.UpsertBlob(new BlobRecord { Id = "sha256:m", Size = 2, MediaType = Manifest, LastAccess = s_t0 });
        _index.UpsertBlob(new BlobRecord { Id = "sha256:m", Size = 2, MediaType = Manifest, LastAccess = s_t0 }); // again: no new entry
        _index.UpsertBlob(new BlobRecord { Id = "sha256:x", Size = 3, MediaType = "application/octet-stream", LastAccess = s_t0 });
        _index.UpsertBlob(new BlobRecord { Id = "sha256:x", Size = 3, MediaType = Manifest + "; charset=utf-8", LastAccess = s_t0 }); // now a manifest
        _index.DeleteBlob("sha256:before");
        _index.DeleteBlob("sha256:never-there");
        _index.TouchBlob("sha256:layer", s_t0.AddDays(1));
        _index.FlushAccess();

        Assert.Equal(new BlobCounts(3, 2), _index.CountBlobs());
        _index.Dispose();
        using var reopened = new CacheIndex(_directory.Combine("index.db"));
        Assert.Equal(new BlobCounts(3, 2), reopened.CountBlobs());
    }

    [Fact]
    public void FindBlob_StoredUtcTime_ComesBackAsUtc()
    {
        Put("sha256:a", 10, s_t0);

        Assert.Equal(DateTimeKind.Utc, _index.FindBlob("sha256:a")!.LastAccess.Kind);
    }

    [Fact]
    public void FlushAccess_SeveralTouches_AddsHitsAndKeepsLatestTime()
    {
        Put("sha256:a", 10, s_t0);

        _index.TouchBlob("sha256:a", s_t0.AddDays(1));
        _index.TouchBlob("sha256:a", s_t0.AddDays(2));
        _index.TouchBlob("sha256:a", s_t0.AddDays(3));
        var written = _index.FlushAccess();

        var record = _index.FindBlob("sha256:a")!;
        Assert.Equal(1, written);
        Assert.Equal(3, record.Hits);
        Assert.Equal(s_t0.AddDays(3), record.LastAccess.ToUniversalTime());
    }

    [Fact]
    public void FlushAccess_TouchOlderThanStored_KeepsStoredTime()
    {
        Put("sha256:a", 10, s_t0);

        _index.TouchBlob("sha256:a", s_t0.AddDays(-1));
        _index.FlushAccess();

        Assert.Equal(s_t0, _index.FindBlob("sha256:a")!.LastAccess.ToUniversalTime());
    }

    [Fact]
    public void TouchBlob_BeforeFlush_DoesNotWriteTheIndex()
    {
        Put("sha256:a", 10, s_t0);

        _index.TouchBlob("sha256:a", s_t0.AddDays(1));

        Assert.Equal(s_t0, _index.FindBlob("sha256:a")!.LastAccess.ToUniversalTime());
        Assert.Equal(0, _index.FindBlob("sha256:a")!.Hits);
    }

    [Fact]
    public void FlushAccess_DeletedOrUnknownBlob_WritesNothing()
    {
        Put("sha256:a", 10, s_t0);
        _index.TouchBlob("sha256:a", s_t0.AddMinutes(1));
        _index.TouchBlob("sha256:unknown", s_t0.AddMinutes(1));

        _index.DeleteBlob("sha256:a");

        Assert.Equal(0, _index.FlushAccess());
        Assert.Null(_index.FindBlob("sha256:a"));
    }

    [Fact]
    public void BlobsByLastAccess_AfterFlush_LeastRecentlyUsedFirst()
    {
        Put("sha256:a", 1, s_t0);
        Put("sha256:b", 1, s_t0.AddDays(1));
        Put("sha256:c", 1, s_t0.AddDays(2));
        _index.TouchBlob("sha256:a", s_t0.AddDays(3));
        _index.FlushAccess();

        Assert.Equal(["sha256:b", "sha256:c", "sha256:a"], _index.BlobsByLastAccess().Select(b => b.Id));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BlobsByLastAccess_ManyPagesWithTies_EachRecordOnceInOrder_EvenWhenDeletedOnTheWay(bool deleteAsReturned)
    {
        // Days 0, 1, 1, 1, 1, 1, 2, 3, 3, 4: a page of 2 ends inside the run of ties, twice.
        var days = new[] { 0, 1, 1, 1, 1, 1, 2, 3, 3, 4 };
        for (var i = 0; i < days.Length; i++)
        {
            Put($"sha256:{i}", 1, s_t0.AddDays(days[i]));
        }

        var seen = new List<string>();
        foreach (var record in _index.BlobsByLastAccess(pageSize: 2))
        {
            seen.Add(record.Id);
            if (deleteAsReturned)
            {
                _index.DeleteBlob(record.Id);
            }
        }

        Assert.Equal(days.Length, seen.Count);
        Assert.Equal(days.Length, seen.Distinct().Count());
        Assert.Equal(days, seen.Select(id => days[int.Parse(id["sha256:".Length..], System.Globalization.CultureInfo.InvariantCulture)]));
    }

    [Fact]
    public void Dispose_PendingTouches_Flushed()
    {
        var path = _directory.Combine("other.db");
        using (var index = new CacheIndex(path))
        {
            index.UpsertBlob(new BlobRecord { Id = "sha256:a", LastAccess = s_t0 });
            index.TouchBlob("sha256:a", s_t0.AddDays(1));
        }

        using var reopened = new CacheIndex(path);
        Assert.Equal(s_t0.AddDays(1), reopened.FindBlob("sha256:a")!.LastAccess.ToUniversalTime());
        Assert.Equal(1, reopened.FindBlob("sha256:a")!.Hits);
    }

    [Fact]
    public void PutTag_SameTagTwoAcceptSets_BothFoundAndDeletedByDigest()
    {
        var key = TagRecord.MakeTagKey("registry.test", "team/app", "latest");
        _index.PutTag(new TagRecord { TagKey = key, AcceptKey = "oci", Digest = "sha256:a" });
        _index.PutTag(new TagRecord { TagKey = key, AcceptKey = "docker", Digest = "sha256:b" });
        _index.PutTag(new TagRecord { TagKey = key, AcceptKey = "oci", Digest = "sha256:c" }); // replaces the first

        Assert.Equal(["sha256:b", "sha256:c"], _index.FindTags("registry.test", "team/app", "latest").Select(t => t.Digest).Order());

        _index.DeleteTagsPointingTo("sha256:c");

        Assert.Equal("sha256:b", Assert.Single(_index.FindTags("registry.test", "team/app", "latest")).Digest);
    }

    [Fact]
    public void Link_ThenIsLinked_OnlyForThatRegistryAndRepository()
    {
        _index.Link("registry.test", "team/app", "sha256:a", s_t0);

        Assert.True(_index.IsLinked("registry.test", "team/app", "sha256:a"));
        Assert.False(_index.IsLinked("registry.test", "team/other", "sha256:a"));
        Assert.False(_index.IsLinked("other.test", "team/app", "sha256:a"));

        _index.DeleteLinksOf("sha256:a");

        Assert.False(_index.IsLinked("registry.test", "team/app", "sha256:a"));
    }

    [Fact]
    public void SetVisibility_ThenIsPublic_ReturnsLastValue()
    {
        Assert.Null(_index.IsPublic("registry.test", "team/app"));

        _index.SetVisibility("registry.test", "team/app", isPublic: true, s_t0);
        _index.SetVisibility("registry.test", "team/app", isPublic: false, s_t0);

        Assert.False(_index.IsPublic("registry.test", "team/app"));
    }

    [Fact]
    public async Task Dispose_WhileOtherThreadsWrite_WaitsForThemAndLaterCallsSayDisposed()
    {
        // Before the gate, a dispose cut transactions off mid-write: LiteDB then threw its own internal
        // errors ("transaction must be active to commit") and left transactions whose finalizer ended the
        // process (LiteDB#2828). Now every write either completes or is refused as disposed.
        for (var round = 0; round < 10; round++)
        {
            var path = _directory.Combine($"race-{round}.db");
            var index = new CacheIndex(path);
            var written = new System.Collections.Concurrent.ConcurrentBag<string>();
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
            {
                for (var i = 0; ; i++)
                {
                    var id = $"sha256:{w}-{i}";
                    try
                    {
                        index.UpsertBlob(new BlobRecord { Id = id, Size = i, FirstSeen = s_t0, LastAccess = s_t0 });
                        written.Add(id);
                        index.Link("registry.test", "team/app", id, s_t0);
                    }
                    catch (ObjectDisposedException)
                    {
                        return;
                    }
                }
            })).ToArray();
            while (written.Count < 20)
            {
                await Task.Yield();
            }

            index.Dispose();
            await Task.WhenAll(writers); // any exception other than ObjectDisposedException fails here

            using var reopened = new CacheIndex(path);
            Assert.All(written, id => Assert.NotNull(reopened.FindBlob(id)));
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    [Fact]
    public void LiteDbTransactions_PinnedLiteDbVersion_WorkaroundFindsTheTransactions()
    {
        // When this fails after a LiteDB upgrade, check whether the release removed the TransactionService
        // finalizer (litedb-org/LiteDB#2828); if so, delete LiteDbTransactions instead of fixing it.
        Assert.True(LiteDbTransactions.IsSupported);
    }

    [Fact]
    public void Queries_ReturnMaterializedLists_UsableAfterDispose()
    {
        var path = _directory.Combine("lists.db");
        List<BlobRecord> blobs;
        List<LinkRecord> links;
        using (var index = new CacheIndex(path))
        {
            index.UpsertBlob(new BlobRecord { Id = "sha256:a", LastAccess = s_t0 });
            index.Link("registry.test", "team/app", "sha256:a", s_t0);
            blobs = index.AllBlobs();
            links = index.LinksOf("sha256:a");
        }

        Assert.Equal("sha256:a", Assert.Single(blobs).Id);
        Assert.Equal("team/app", Assert.Single(links).Repository);
    }

    [Fact]
    public void AnyCall_AfterDispose_ObjectDisposed()
    {
        var index = new CacheIndex(_directory.Combine("closed.db"));
        index.Dispose();

        Assert.Throws<ObjectDisposedException>(() => index.FindBlob("sha256:a"));
        Assert.Throws<ObjectDisposedException>(() => index.UpsertBlob(new BlobRecord { Id = "sha256:a" }));
        index.Dispose(); // twice is fine
    }

    [Fact]
    public void FindBlob_ReturnsACopy_ChangingItDoesNotChangeTheIndex()
    {
        Put("sha256:a", 10, s_t0);

        _index.FindBlob("sha256:a")!.MediaType = "changed/by-caller";

        Assert.Equal("application/octet-stream", _index.FindBlob("sha256:a")!.MediaType);
    }

    [Fact]
    public void Lookups_AfterEveryKindOfWrite_SeeTheWrite()
    {
        Put("sha256:a", 10, s_t0);
        Assert.NotNull(_index.FindBlob("sha256:a"));
        _index.TouchBlob("sha256:a", s_t0.AddDays(1));
        _index.FlushAccess();
        Assert.Equal(1, _index.FindBlob("sha256:a")!.Hits);
        _index.DeleteBlob("sha256:a");
        Assert.Null(_index.FindBlob("sha256:a"));

        Assert.False(_index.IsLinked("registry.test", "team/app", "sha256:a"));
        _index.Link("registry.test", "team/app", "sha256:a", s_t0);
        Assert.True(_index.IsLinked("registry.test", "team/app", "sha256:a"));
        _index.DeleteLinksOf("sha256:a");
        Assert.False(_index.IsLinked("registry.test", "team/app", "sha256:a"));

        _index.SetVisibility("registry.test", "team/app", isPublic: true, s_t0);
        Assert.True(_index.IsPublic("registry.test", "team/app"));
        _index.SetVisibility("registry.test", "team/app", isPublic: false, s_t0);
        Assert.False(_index.IsPublic("registry.test", "team/app"));

        // And what is in the file agrees with what was answered from memory.
        var path = _directory.Combine("index.db");
        _index.Dispose();
        using var reopened = new CacheIndex(path);
        Assert.Null(reopened.FindBlob("sha256:a"));
        Assert.False(reopened.IsLinked("registry.test", "team/app", "sha256:a"));
        Assert.False(reopened.IsPublic("registry.test", "team/app"));
    }
}
