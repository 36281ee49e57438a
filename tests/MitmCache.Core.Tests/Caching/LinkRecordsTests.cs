using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Registry;
using static MitmCache.Core.Tests.Caching.IndexKeys;

namespace MitmCache.Core.Tests.Caching;

public sealed class LinkRecordsTests : IDisposable
{
    private static readonly DateTime s_t0 = new(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);

    private static readonly Digest s_cached = Digest.Compute("a"u8);

    private readonly TempDirectory _directory = new();
    private readonly TestIndex _index;

    public LinkRecordsTests() => _index = new TestIndex(_directory.Combine("index.db"));

    public void Dispose()
    {
        _index.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public void Link_ThenIsLinked_OnlyForThatRegistryAndRepository()
    {
        _index.Links.Link("registry.test", "team/app", Key("sha256:a"), s_t0);

        Assert.True(_index.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));
        Assert.False(_index.Links.IsLinked("registry.test", "team/other", Key("sha256:a")));
        Assert.False(_index.Links.IsLinked("other.test", "team/app", Key("sha256:a")));
        Assert.True(_index.Links.AnyIn("registry.test/team/app"));
        Assert.False(_index.Links.AnyIn("registry.test/team/ap"));
        Assert.False(_index.Links.AnyIn("registry.test/team"));

        Assert.Equal(1, _index.Links.DeleteLinksOf(Key("sha256:a")));

        Assert.False(_index.Links.IsLinked("registry.test", "team/app", Key("sha256:a")));
        Assert.False(_index.Links.AnyIn("registry.test/team/app"));
    }

    [Fact]
    public void DeleteOrphans_LinksOfBlobsNoLongerCached_GoOverSeveralPages_OthersStay()
    {
        // An index written before links went with their blob: 25 evicted blobs left their links behind.
        var cached = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < 50; i++)
        {
            var digest = $"sha256:{i:D64}";
            _index.Links.Link("registry.test", "team/app", Key(digest), s_t0);
            _index.Links.Link("registry.test", "team/other", Key(digest), s_t0);
            if (i % 2 == 0)
            {
                cached.Add(digest);
            }
        }

        Assert.True(_index.Links.IsLinked("registry.test", "team/app", Key($"sha256:{1:D64}"))); // answered from memory from now on

        var deleted = _index.Links.DeleteOrphans(d => cached.Contains(d.ToString()), pageSize: 7);

        Assert.Equal(50, deleted);
        Assert.Equal(50, _index.Links.AllLinks().Count);
        Assert.All(_index.Links.AllLinks(), l => Assert.Contains(l.Digest, cached));
        Assert.False(_index.Links.IsLinked("registry.test", "team/app", Key($"sha256:{1:D64}")));
        Assert.True(_index.Links.IsLinked("registry.test", "team/app", Key($"sha256:{2:D64}")));
        Assert.Equal(0, _index.Links.DeleteOrphans(d => cached.Contains(d.ToString()), pageSize: 7)); // and it makes nothing: a second sweep finds nothing
    }

    [Fact]
    public void DeleteOrphans_LinkEarnedAgainDuringTheSweep_Stays()
    {
        _index.Links.Link("registry.test", "team/app", s_cached, s_t0);

        // The sweep finds the link's blob gone; meanwhile the blob is fetched again and the link earned anew.
        var deleted = _index.Links.DeleteOrphans(digest =>
        {
            _index.Links.Link("registry.test", "team/app", digest, s_t0.AddDays(1));
            return false;
        });

        Assert.Equal(0, deleted);
        Assert.True(_index.Links.IsLinked("registry.test", "team/app", s_cached));
    }
}
