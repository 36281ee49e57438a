using MitmCache.Caching;

namespace MitmCache.Registry;

/// <summary>
/// Whether each repository is public, as upstream's answers to clients without credentials showed (collection
/// <c>repositories</c>; the rules are <see cref="AccessGrants"/>'). Unknown counts as private, so forgetting a
/// record only ever makes an answer stricter: <see cref="DeleteStale"/> drops those of repositories nothing is
/// cached from any more.
/// </summary>
internal sealed class RepositoryVisibility
{
    // What every hit looks up, kept in memory; see IndexFront.
    private const int FrontCapacity = 10_000;

    private readonly IndexCollection<RepositoryRecord> _repositories;
    private readonly IndexFront<RepositoryRecord> _front = new(FrontCapacity);

    public RepositoryVisibility(IndexDatabase database) =>
        _repositories = database.Collection<RepositoryRecord>(IndexSchema.Repositories, repositories => repositories.EnsureIndex(r => r.UpdatedAt));

    public bool? IsPublic(string registry, string repository) => FindRepository(registry, repository)?.Public;

    public RepositoryRecord? FindRepository(string registry, string repository)
    {
        var id = RepositoryRecord.MakeId(registry, repository);
        return _repositories.Use(c => _front.Find(id, () => c.FindById(id)));
    }

    /// <summary>A bookkeeping write: false when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool SetVisibility(string registry, string repository, bool isPublic, DateTime at)
    {
        var record = new RepositoryRecord { Id = RepositoryRecord.MakeId(registry, repository), Public = isPublic, UpdatedAt = at };
        return _repositories.TryWrite(c => _front.Write(record.Id, record, () => c.Upsert(record)));
    }

    /// <summary>
    /// Drops the records not updated since <paramref name="before"/> for which <paramref name="keep"/> says no
    /// (a repository something is still cached from keeps its record: offline, "public" stands). Returns how many.
    /// </summary>
    public int DeleteStale(DateTime before, Func<RepositoryRecord, bool> keep)
    {
        var stale = _repositories.Use(c => c.Find(r => r.UpdatedAt < before).ToList());
        var deleted = 0;
        foreach (var record in stale.Where(r => !keep(r)))
        {
            // Only if not updated meanwhile: a fresh answer from upstream stays.
            var id = record.Id;
            var updatedAt = record.UpdatedAt;
            deleted += _repositories.Use(c =>
            {
                var count = 0;
                _front.Write(id, null, () => count = c.DeleteMany(r => r.Id == id && r.UpdatedAt == updatedAt));
                return count;
            });
        }

        return deleted;
    }
}
