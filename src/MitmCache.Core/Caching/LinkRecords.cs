using LiteDB;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// Which repositories each digest came through (collection <c>links</c>): the basis for serving a cached digest
/// under a repository. A link is only ever made from bytes upstream sent through that repository (see
/// <see cref="Registry.RegistryAuthorizer"/>); this store makes none of its own. Links go with their blob
/// (<see cref="BlobRecords.DeleteBlob"/>), and <see cref="DeleteOrphans"/> sweeps those left behind.
/// </summary>
internal sealed class LinkRecords
{
    // What every hit looks up, kept in memory; see IndexFront.
    private const int FrontCapacity = 10_000;

    private readonly IndexCollection<LinkRecord> _links;
    private readonly IndexFront<LinkRecord> _front = new(FrontCapacity);

    public LinkRecords(IndexDatabase database) =>
        _links = database.Collection<LinkRecord>(IndexSchema.Links, links => links.EnsureIndex(l => l.Digest));

    /// <summary>A bookkeeping write: false when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool Link(string registry, string repository, Digest digest, DateTime at)
    {
        var key = digest.ToString();
        var link = new LinkRecord
        {
            Id = LinkRecord.MakeId(registry, repository, key),
            Registry = registry,
            Repository = repository,
            Digest = key,
            SeenAt = at,
        };
        return _links.TryWrite(c => _front.Write(link.Id, link, () => c.Upsert(link)));
    }

    public bool IsLinked(string registry, string repository, Digest digest)
    {
        var id = LinkRecord.MakeId(registry, repository, digest.ToString());
        return _links.Use(c => _front.Find(id, () => c.FindById(id)) is not null);
    }

    public List<LinkRecord> LinksOf(Digest digest)
    {
        var key = digest.ToString();
        return _links.Use(c => c.Find(l => l.Digest == key).ToList());
    }

    public List<LinkRecord> AllLinks() => _links.Use(c => c.FindAll().ToList());

    /// <summary>Whether anything is linked in the repository (<see cref="Registry.RepositoryRecord.MakeId"/>): one lookup on the key's prefix.</summary>
    public bool AnyIn(string repositoryId) => _links.Use(c => c.Exists(Query.StartsWith("_id", LinkRecord.PrefixOf(repositoryId))));

    /// <summary>Deletes every link of a digest; returns how many. The lookups every hit makes stay warm.</summary>
    public int DeleteLinksOf(Digest digest) => _links.Use(c =>
    {
        var key = digest.ToString();
        var ids = c.Find(l => l.Digest == key).Select(l => l.Id).ToList();
        foreach (var id in ids)
        {
            _front.Write(id, null, () => c.Delete(id));
        }

        return ids.Count;
    });

    /// <summary>
    /// Deletes the links whose blob is no longer cached, a page at a time: what versions before links went with
    /// their blob left behind, and what a removal racing a link leaves. A link made again meanwhile (its blob
    /// fetched anew) has a new time and stays. Returns how many went.
    /// </summary>
    public int DeleteOrphans(Func<Digest, bool> isCached, int pageSize = 1024)
    {
        var after = "";
        var deleted = 0;
        while (true)
        {
            var from = after;
            var page = _links.Use(c => c.Query().Where(Query.GT("_id", from)).OrderBy("_id").Limit(pageSize).ToList());
            foreach (var link in page.Where(l => !Digest.TryParse(l.Digest, out var digest) || !isCached(digest)))
            {
                var unchanged = Query.And(Query.EQ("_id", link.Id), Query.EQ(nameof(LinkRecord.SeenAt), link.SeenAt));
                deleted += _links.Use(c =>
                {
                    var count = 0;
                    _front.Write(link.Id, null, () => count = c.DeleteMany(unchanged));
                    return count;
                });
            }

            if (page.Count < pageSize)
            {
                return deleted;
            }

            after = page[^1].Id;
        }
    }
}
