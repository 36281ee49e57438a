using Microsoft.Extensions.Logging.Abstractions;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Registry;
using Xunit.Abstractions;
using static MitmCache.Core.Tests.Caching.IndexKeys;

namespace MitmCache.Core.Tests.Caching;

/// <summary>
/// A long-lived node's index stops growing: what expires or goes is deleted by the maintenance timer (on the
/// injected clock) or with its blob, and the pages it held are used again, so a second round of the same
/// traffic leaves the file no larger than the first.
/// </summary>
public sealed class IndexMaintenanceTests : IDisposable
{
    private const string Registry = "registry.test";

    private readonly TempDirectory _directory = new();
    private readonly TimerClock _clock = new();
    private readonly ITestOutputHelper _output;
    private readonly ProxySettings _settings;
    private readonly TestIndex _index;
    private readonly IndexMaintenance _maintenance;

    public IndexMaintenanceTests(ITestOutputHelper output)
    {
        _output = output;
        _settings = TestSettings.Create(_directory.Path);
        _index = new TestIndex(_settings.Layout.Index, _clock);
        _maintenance = new IndexMaintenance(_index.Database, _index.Blobs, _index.Links, _index.Grants, _index.Visibility, _settings, _clock,
            NullLogger<IndexMaintenance>.Instance);
    }

    public void Dispose()
    {
        _maintenance.Dispose();
        _index.Dispose();
        _directory.Dispose();
    }

    private DateTime Now => _clock.GetUtcNow().UtcDateTime;

    /// <summary>The data file and LiteDB's log beside it.</summary>
    private (long Data, long Log) FileSizes()
    {
        var log = DataLayout.LogOf(_settings.Layout.Index);
        return (new FileInfo(_settings.Layout.Index).Length, File.Exists(log) ? new FileInfo(log).Length : 0);
    }

    /// <summary>An hour of pulls with bearer tokens: each token has its own key, and its grant lasts the token's five minutes.</summary>
    private void GrantTokens(int round, int count)
    {
        for (var i = 0; i < count; i++)
        {
            _index.Grants.PutGrant(new GrantRecord
            {
                CredentialKey = $"{round:D2}{i:D62}",
                Registry = Registry,
                Repository = $"team/app{i % 20}",
                Expires = Now.AddMinutes(5),
            });
        }
    }

    [Fact]
    public void Timer_TenThousandTokenGrantsAnHour_ExpiredOnesDeleted_FileStopsGrowing()
    {
        var live = new GrantRecord { CredentialKey = "basic", Registry = Registry, Repository = "team/private", Expires = Now.AddDays(7) };
        _index.Grants.PutGrant(live);
        GrantTokens(round: 1, count: 10_000);
        var written = FileSizes();

        _clock.Advance(IndexMaintenance.Interval);

        var afterFirst = FileSizes();
        Assert.Equal(1, _index.Grants.Count()); // the Basic credential's grant is live for days
        Assert.NotNull(_index.Grants.FindGrant("basic", Registry, "team/private"));
        Assert.Equal(0, afterFirst.Log); // the log was written into the data file

        GrantTokens(round: 2, count: 10_000);
        _clock.Advance(IndexMaintenance.Interval);
        GrantTokens(round: 3, count: 10_000);
        _clock.Advance(IndexMaintenance.Interval);

        var afterThird = FileSizes();
        _output.WriteLine($"10,000 grants written: data {written.Data} B + log {written.Log} B; after maintenance: {afterFirst.Data} B + {afterFirst.Log} B; "
            + $"after two more hours of the same: {afterThird.Data} B + {afterThird.Log} B, {_index.Grants.Count()} grant(s)");
        Assert.Equal(1, _index.Grants.Count());
        // Freed pages are used again (not all of them: LiteDB keeps some per collection), so two more hours of the
        // same traffic grow the file by a small part of what one hour wrote, instead of by all of it twice.
        Assert.True(afterThird.Data - afterFirst.Data < written.Data / 20, $"the file grew from {afterFirst.Data} to {afterThird.Data} bytes");
    }

    [Fact]
    public void EvictThousandBlobs_TheirLinksAndTagsGoWithThem_FileStopsGrowing()
    {
        var sizes = new List<(long Data, long Log)>();
        for (var round = 0; round < 3; round++)
        {
            var digests = Enumerable.Range(0, 1_000).Select(i => $"sha256:{round:D2}{i:D62}").ToList();
            foreach (var digest in digests)
            {
                _index.Blobs.UpsertBlob(new BlobRecord { Id = digest, Size = 1_000, FirstSeen = Now, LastAccess = Now });
                _index.Links.Link(Registry, "team/app", Key(digest), Now);
                _index.Links.Link(Registry, "team/other", Key(digest), Now);
                _index.Tags.PutTag(new TagRecord { TagKey = TagRecord.MakeTagKey(Registry, "team/app", digest[^8..]), AcceptKey = "oci", Digest = digest });
            }

            Assert.Equal(2_000, _index.Links.AllLinks().Count);
            foreach (var digest in digests)
            {
                _index.Blobs.DeleteBlob(Key(digest)); // what eviction, prune and verify do
            }

            Assert.Empty(_index.Links.AllLinks());
            Assert.Empty(_index.Tags.AllTags());
            _clock.Advance(IndexMaintenance.Interval); // the checkpoint
            sizes.Add(FileSizes());
        }

        _output.WriteLine($"1,000 blobs with 2 links and a tag each, stored and evicted, three times: file after each round {string.Join(", ", sizes.Select(s => $"{s.Data} B + log {s.Log} B"))}");
        Assert.Equal(0, _index.Blobs.CountBlobs().Total);
        Assert.True(sizes[2].Data - sizes[0].Data < sizes[0].Data / 20, $"the file grew from {sizes[0].Data} to {sizes[2].Data} bytes");
    }

    [Fact]
    public void Timer_LinksLeftByAnOlderVersion_SweptOnceADay_LinksOfCachedBlobsStay()
    {
        var (kept, evicted, raced) = (Digest.Compute("kept"u8), Digest.Compute("evicted"u8), Digest.Compute("raced"u8));
        _index.Blobs.UpsertBlob(new BlobRecord { Id = kept.ToString(), Size = 1, LastAccess = Now });
        _index.Links.Link(Registry, "team/app", kept, Now);
        _index.Links.Link(Registry, "team/app", evicted, Now);

        _clock.Advance(IndexMaintenance.Interval);

        Assert.Equal([kept.ToString()], _index.Links.AllLinks().Select(l => l.Digest));
        _index.Links.Link(Registry, "team/app", raced, Now); // a removal racing a link: swept the next day
        _clock.Advance(IndexMaintenance.Interval);
        Assert.True(_index.Links.IsLinked(Registry, "team/app", raced));
        _clock.Advance(IndexMaintenance.SweepInterval);
        Assert.Equal([kept.ToString()], _index.Links.AllLinks().Select(l => l.Digest));
    }

    [Fact]
    public void Timer_VisibilityOfRepositoriesNothingIsCachedFrom_ForgottenAfterTheOfflineWindow()
    {
        var cached = Digest.Compute("a"u8);
        _index.Blobs.UpsertBlob(new BlobRecord { Id = cached.ToString(), Size = 1, LastAccess = Now });
        _index.Links.Link(Registry, "team/cached", cached, Now);
        _index.Visibility.SetVisibility(Registry, "team/cached", isPublic: true, Now);
        _index.Visibility.SetVisibility(Registry, "team/gone", isPublic: true, Now);
        _index.Visibility.SetVisibility(Registry, "team/private", isPublic: false, Now);

        _clock.Advance(_settings.OfflineGrantWindow - TimeSpan.FromHours(1));
        Assert.True(_index.Visibility.IsPublic(Registry, "team/gone")); // within the window: kept

        _clock.Advance(TimeSpan.FromHours(2));

        Assert.True(_index.Visibility.IsPublic(Registry, "team/cached")); // offline, "public" stands for what is cached
        Assert.Null(_index.Visibility.IsPublic(Registry, "team/gone")); // unknown: as strict as private
        Assert.Null(_index.Visibility.IsPublic(Registry, "team/private"));
        Assert.Equal(new MaintenanceReport(0, 0, 0), _maintenance.Run()); // and a pass finds nothing left to do
    }

    [Fact]
    public void Dispose_StopsTheTimer()
    {
        _index.Grants.PutGrant(new GrantRecord { CredentialKey = "k", Registry = Registry, Repository = "team/app", Expires = Now.AddMinutes(5) });

        _maintenance.Dispose();
        _clock.Advance(IndexMaintenance.Interval);

        Assert.Equal(1, _index.Grants.Count());
    }
}
