using System.IO.Compression;
using LiteDB;
using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Registry;
using static MitmCache.Core.Tests.Caching.IndexKeys;

namespace MitmCache.Core.Tests.Caching;

/// <summary>The connection the stores share: closing, reopening, corruption, and the on-disk format.</summary>
public sealed class IndexDatabaseTests : IDisposable
{
    private static readonly DateTime s_t0 = new(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);

    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Open_IndexWrittenBeforeTheStoresWereSplit_EveryRecordReadsBackAndTakesWrites()
    {
        // Fixtures/index-before-split.db.gz was written by CacheIndex (main before the split) with one record or two
        // in each collection; the names and document shapes are the on-disk format, so it opens as it is.
        var path = _directory.Combine("index.db");
        using (var packed = new GZipStream(File.OpenRead(Path.Combine(AppContext.BaseDirectory, "Caching", "Fixtures", "index-before-split.db.gz")), CompressionMode.Decompress))
        using (var file = File.Create(path))
        {
            packed.CopyTo(file);
        }

        var manifest = "sha256:" + new string('a', 64);
        var layer = "sha256:" + new string('b', 64);
        using (var database = IndexDatabase.OpenOrRebuild(path, TimeProvider.System, out var movedAside))
        {
            Assert.Null(movedAside);
            var links = new LinkRecords(database);
            var tags = new TagRecords(database);
            var blobs = new BlobRecords(database, links, tags);
            var visibility = new RepositoryVisibility(database);
            var grants = new GrantRecords(database);
            var challenges = new ChallengeRecords(database);
            var uploads = new MitmCache.ObjectStore.UploadQueue(database, capacity: 10);

            var record = blobs.FindBlob(Key(manifest))!;
            Assert.Equal((1234L, "application/vnd.oci.image.manifest.v1+json", 3L), (record.Size, record.MediaType, record.Hits));
            Assert.Equal((s_t0, s_t0.AddDays(1)), (record.FirstSeen, record.LastAccess));
            Assert.Equal(new BlobCounts(2, 1), blobs.CountBlobs());
            Assert.True(links.IsLinked("registry.test", "team/app", Key(manifest)));
            Assert.True(links.IsLinked("registry.test", "team/app", Key(layer)));
            var tag = Assert.Single(tags.FindTags("registry.test", "team/app", "v1"));
            Assert.Equal((manifest, s_t0), (tag.Digest, tag.FetchedAt));
            Assert.True(visibility.IsPublic("registry.test", "team/app"));
            Assert.False(visibility.IsPublic("registry.test", "team/private"));
            var grant = grants.FindGrant(new string('C', 64), "registry.test", "team/private")!;
            Assert.Equal(s_t0.AddDays(7), grant.Expires);
            Assert.Equal("https://auth.test/token", challenges.FindChallenge("registry.test")!.Realm);
            Assert.Equal("https://backing.test/v2/", challenges.FindChallenge("mirror.test")!.Redirect);
            Assert.Equal(layer, Assert.Single(uploads.Due(s_t0, 10)).Id);

            // The indexes added since (grants by expiry, visibility by time) are built on the old file.
            Assert.Equal(1, grants.DeleteExpiredGrants(s_t0.AddDays(8)));
            Assert.Equal(1, visibility.DeleteStale(s_t0.AddDays(1), r => links.AnyIn(r.Id)));
            Assert.Null(visibility.IsPublic("registry.test", "team/private"));
            blobs.DeleteBlob(Key(layer));
            Assert.False(links.IsLinked("registry.test", "team/app", Key(layer)));
        }

        using var reopened = new TestIndex(path);
        Assert.Equal(new BlobCounts(1, 1), reopened.Blobs.CountBlobs());
        Assert.True(reopened.Visibility.IsPublic("registry.test", "team/app"));
    }

    [Fact]
    public void OpenOrRebuild_DocumentOfTheWrongShape_MovedAsideAndStartedEmpty()
    {
        // Opening reads every document as the type it is stored as: one a page read would accept, but the
        // stores could not, counts as corruption then, not as an error on some later request.
        var path = _directory.Combine("index.db");
        using (var raw = new LiteDatabase(new ConnectionString { Filename = path, Connection = ConnectionType.Direct }))
        {
            raw.GetCollection(IndexSchema.Grants).Insert(new BsonDocument { ["_id"] = "x", ["Expires"] = "not a time" });
        }

        using var database = IndexDatabase.OpenOrRebuild(path, TimeProvider.System, out var movedAside);

        Assert.NotNull(movedAside);
        Assert.True(File.Exists(movedAside));
        Assert.Equal(0, new GrantRecords(database).Count());
    }

    [Fact]
    public void OpenOrRebuild_NotADatabase_MovedAsideAndStartedEmpty()
    {
        var path = _directory.Combine("index.db");
        File.WriteAllBytes(path, [.. Enumerable.Range(0, 64 * 1024).Select(i => (byte)(i * 31))]);

        using var database = IndexDatabase.OpenOrRebuild(path, TimeProvider.System, out var movedAside);

        Assert.NotNull(movedAside);
        Assert.Null(new BlobRecords(database, new LinkRecords(database), new TagRecords(database)).FindBlob(Key("sha256:a")));
    }

    [Fact]
    public void Open_SecondOpenOfTheSameFile_Locked()
    {
        var path = _directory.Combine("index.db");
        using var first = new IndexDatabase(path);

        Assert.Throws<CacheLockedException>(() => new IndexDatabase(path));
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
            var index = new TestIndex(path);
            var written = new System.Collections.Concurrent.ConcurrentBag<string>();
            var writers = Enumerable.Range(0, 4).Select(w => Task.Run(() =>
            {
                for (var i = 0; ; i++)
                {
                    var id = $"sha256:{w}-{i}";
                    try
                    {
                        index.Blobs.UpsertBlob(new BlobRecord { Id = id, Size = i, FirstSeen = s_t0, LastAccess = s_t0 });
                        written.Add(id);
                        index.Links.Link("registry.test", "team/app", Key(id), s_t0);
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

            using var reopened = new TestIndex(path);
            Assert.All(written, id => Assert.NotNull(reopened.Blobs.FindBlob(Key(id))));
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
        using (var index = new TestIndex(path))
        {
            index.Blobs.UpsertBlob(new BlobRecord { Id = "sha256:a", LastAccess = s_t0 });
            index.Links.Link("registry.test", "team/app", Key("sha256:a"), s_t0);
            blobs = index.Blobs.AllBlobs();
            links = index.Links.LinksOf(Key("sha256:a"));
        }

        Assert.Equal("sha256:a", Assert.Single(blobs).Id);
        Assert.Equal("team/app", Assert.Single(links).Repository);
    }

    [Fact]
    public void AnyCall_AfterDispose_ObjectDisposed()
    {
        var index = new TestIndex(_directory.Combine("closed.db"));
        index.Dispose();

        Assert.Throws<ObjectDisposedException>(() => index.Blobs.FindBlob(Key("sha256:a")));
        Assert.Throws<ObjectDisposedException>(() => index.Blobs.UpsertBlob(new BlobRecord { Id = "sha256:a" }));
        Assert.Throws<ObjectDisposedException>(() => index.Grants.FindGrant("k", "registry.test", "team/app"));
        index.Dispose(); // twice is fine
    }

    [Fact]
    public void Lookups_AfterEveryKindOfWrite_SeeTheWrite()
    {
        var path = _directory.Combine("index.db");
        var index = new TestIndex(path);
        index.Blobs.UpsertBlob(new BlobRecord { Id = "sha256:a", Size = 10, FirstSeen = s_t0, LastAccess = s_t0 });
        Assert.NotNull(index.Blobs.FindBlob(Key("sha256:a")));
        index.Blobs.TouchBlob(Key("sha256:a"), s_t0.AddDays(1));
        index.Blobs.FlushAccess();
        Assert.Equal(1, index.Blobs.FindBlob(Key("sha256:a"))!.Hits);
        index.Blobs.DeleteBlob(Key("sha256:a"));
        Assert.Null(index.Blobs.FindBlob(Key("sha256:a")));

        Assert.False(index.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));
        index.Links.Link("registry.test", "team/app", Key("sha256:a"), s_t0);
        Assert.True(index.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));
        index.Links.DeleteLinksOf(Key("sha256:a"));
        Assert.False(index.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));

        index.Visibility.SetVisibility("registry.test", "team/app", isPublic: true, s_t0);
        Assert.True(index.Visibility.IsPublic("registry.test", "team/app"));
        index.Visibility.SetVisibility("registry.test", "team/app", isPublic: false, s_t0);
        Assert.False(index.Visibility.IsPublic("registry.test", "team/app"));

        // And what is in the file agrees with what was answered from memory.
        index.Dispose();
        using var reopened = new TestIndex(path);
        Assert.Null(reopened.Blobs.FindBlob(Key("sha256:a")));
        Assert.False(reopened.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));
        Assert.False(reopened.Visibility.IsPublic("registry.test", "team/app"));
    }
}
