using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using static MitmCache.Core.Tests.Caching.IndexKeys;

namespace MitmCache.Core.Tests.Caching;

/// <remarks>
/// LiteDB returns times as local (see the skipped Kind test), so times are compared in UTC and events
/// are a day apart: more than any UTC offset, so ordering holds in every time zone.
/// </remarks>
public sealed class BlobRecordsTests : IDisposable
{
    private static readonly DateTime s_t0 = new(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);

    private readonly TempDirectory _directory = new();
    private readonly TestIndex _open;
    private readonly BlobRecords _index;

    public BlobRecordsTests()
    {
        _open = new TestIndex(_directory.Combine("index.db"));
        _index = _open.Blobs;
    }

    public void Dispose()
    {
        _open.Dispose();
        _directory.Dispose();
    }

    private void Put(string id, long size, DateTime lastAccess) =>
        _index.UpsertBlob(new BlobRecord { Id = id, Size = size, FirstSeen = lastAccess, LastAccess = lastAccess });

    [Fact]
    public void UpsertBlob_ThenFind_RoundTrips()
    {
        Put("sha256:a", 10, s_t0);

        var record = _index.FindBlob(Key("sha256:a"));

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
        _index.DeleteBlob(Key("sha256:before"));
        _index.DeleteBlob(Key("sha256:never-there"));
        _index.TouchBlob(Key("sha256:layer"), s_t0.AddDays(1));
        _index.FlushAccess();

        Assert.Equal(new BlobCounts(3, 2), _index.CountBlobs());
        _open.Dispose();
        using var reopened = new TestIndex(_directory.Combine("index.db"));
        Assert.Equal(new BlobCounts(3, 2), reopened.Blobs.CountBlobs());
    }

    [Fact]
    public void FindBlob_StoredUtcTime_ComesBackAsUtc()
    {
        Put("sha256:a", 10, s_t0);

        Assert.Equal(DateTimeKind.Utc, _index.FindBlob(Key("sha256:a"))!.LastAccess.Kind);
    }

    [Fact]
    public void FlushAccess_SeveralTouches_AddsHitsAndKeepsLatestTime()
    {
        Put("sha256:a", 10, s_t0);

        _index.TouchBlob(Key("sha256:a"), s_t0.AddDays(1));
        _index.TouchBlob(Key("sha256:a"), s_t0.AddDays(2));
        _index.TouchBlob(Key("sha256:a"), s_t0.AddDays(3));
        var written = _index.FlushAccess();

        var record = _index.FindBlob(Key("sha256:a"))!;
        Assert.Equal(1, written);
        Assert.Equal(3, record.Hits);
        Assert.Equal(s_t0.AddDays(3), record.LastAccess.ToUniversalTime());
    }

    [Fact]
    public void FlushAccess_TouchOlderThanStored_KeepsStoredTime()
    {
        Put("sha256:a", 10, s_t0);

        _index.TouchBlob(Key("sha256:a"), s_t0.AddDays(-1));
        _index.FlushAccess();

        Assert.Equal(s_t0, _index.FindBlob(Key("sha256:a"))!.LastAccess.ToUniversalTime());
    }

    [Fact]
    public void TouchBlob_BeforeFlush_DoesNotWriteTheIndex()
    {
        Put("sha256:a", 10, s_t0);

        _index.TouchBlob(Key("sha256:a"), s_t0.AddDays(1));

        Assert.Equal(s_t0, _index.FindBlob(Key("sha256:a"))!.LastAccess.ToUniversalTime());
        Assert.Equal(0, _index.FindBlob(Key("sha256:a"))!.Hits);
    }

    [Fact]
    public void FlushAccess_DeletedOrUnknownBlob_WritesNothing()
    {
        Put("sha256:a", 10, s_t0);
        _index.TouchBlob(Key("sha256:a"), s_t0.AddMinutes(1));
        _index.TouchBlob(Key("sha256:unknown"), s_t0.AddMinutes(1));

        _index.DeleteBlob(Key("sha256:a"));

        Assert.Equal(0, _index.FlushAccess());
        Assert.Null(_index.FindBlob(Key("sha256:a")));
    }

    [Fact]
    public void BlobsByLastAccess_AfterFlush_LeastRecentlyUsedFirst()
    {
        Put("sha256:a", 1, s_t0);
        Put("sha256:b", 1, s_t0.AddDays(1));
        Put("sha256:c", 1, s_t0.AddDays(2));
        _index.TouchBlob(Key("sha256:a"), s_t0.AddDays(3));
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
                _index.DeleteBlob(Key(record.Id));
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
        using (var index = new TestIndex(path))
        {
            index.Blobs.UpsertBlob(new BlobRecord { Id = "sha256:a", LastAccess = s_t0 });
            index.Blobs.TouchBlob(Key("sha256:a"), s_t0.AddDays(1));
        }

        using var reopened = new TestIndex(path);
        Assert.Equal(s_t0.AddDays(1), reopened.Blobs.FindBlob(Key("sha256:a"))!.LastAccess.ToUniversalTime());
        Assert.Equal(1, reopened.Blobs.FindBlob(Key("sha256:a"))!.Hits);
    }

    [Fact]
    public void FindBlob_ReturnsACopy_ChangingItDoesNotChangeTheIndex()
    {
        Put("sha256:a", 10, s_t0);

        _index.FindBlob(Key("sha256:a"))!.MediaType = "changed/by-caller";

        Assert.Equal("application/octet-stream", _index.FindBlob(Key("sha256:a"))!.MediaType);
    }

    [Fact]
    public void DeleteBlob_ItsLinksAndTagsGo_OtherBlobsKeepTheirs()
    {
        Put("sha256:a", 10, s_t0);
        Put("sha256:b", 10, s_t0);
        _open.Links.Link("registry.test", "team/app", Key("sha256:a"), s_t0);
        _open.Links.Link("registry.test", "team/other", Key("sha256:a"), s_t0);
        _open.Links.Link("registry.test", "team/app", Key("sha256:b"), s_t0);
        Assert.True(_open.Links.IsLinked("registry.test", "team/app", Key("sha256:a"))); // now answered from memory
        var tag = TagRecord.MakeTagKey("registry.test", "team/app", "latest");
        _open.Tags.PutTag(new TagRecord { TagKey = tag, AcceptKey = "oci", Digest = "sha256:a" });
        _open.Tags.PutTag(new TagRecord { TagKey = tag, AcceptKey = "docker", Digest = "sha256:b" });

        _index.DeleteBlob(Key("sha256:a"));

        Assert.Empty(_open.Links.LinksOf(Key("sha256:a")));
        Assert.False(_open.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));
        Assert.True(_open.Links.IsLinked("registry.test", "team/app", Key("sha256:b")));
        Assert.Equal("sha256:b", Assert.Single(_open.Tags.FindTags("registry.test", "team/app", "latest")).Digest);
        Assert.Equal(["sha256:b"], _open.Links.AllLinks().Select(l => l.Digest));
    }
}
