using MitmCache.Caching;

namespace MitmCache.Registry;

/// <summary>
/// Grants, as <see cref="AccessGrants"/> decides them (collection <c>grants</c>): one per credential key,
/// registry and repository, with its expiry. A bearer token's grant lasts minutes and each token has its own
/// key, so expired grants pile up unless <see cref="IndexMaintenance"/> deletes them (<see cref="DeleteExpiredGrants"/>).
/// </summary>
internal sealed class GrantRecords
{
    private readonly IndexCollection<GrantRecord> _grants;

    public GrantRecords(IndexDatabase database) =>
        _grants = database.Collection<GrantRecord>(IndexSchema.Grants, grants =>
        {
            grants.EnsureIndex(g => g.Registry);
            grants.EnsureIndex(g => g.Expires);
        });

    public GrantRecord? FindGrant(string credentialKey, string registry, string repository) =>
        _grants.Use(c => c.FindById(GrantRecord.MakeId(credentialKey, registry, repository)));

    /// <summary>A bookkeeping write: false when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool PutGrant(GrantRecord grant)
    {
        grant.Id = GrantRecord.MakeId(grant.CredentialKey, grant.Registry, grant.Repository);
        return _grants.TryWrite(c => c.Upsert(grant));
    }

    /// <summary>A bookkeeping write: false when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool DeleteGrant(string credentialKey, string registry, string repository) =>
        _grants.TryWrite(c => c.Delete(GrantRecord.MakeId(credentialKey, registry, repository)));

    /// <summary>Drops every grant of a registry, or of one repository in it. Returns how many.</summary>
    public int DeleteGrants(string registry, string? repository) =>
        _grants.Use(c => c.DeleteMany(g => g.Registry == registry && (repository == null || g.Repository == repository)));

    /// <summary>Drops the grants that expired by <paramref name="now"/> (they prove nothing any more). Returns how many.</summary>
    public int DeleteExpiredGrants(DateTime now) => _grants.Use(c => c.DeleteMany(g => g.Expires <= now));

    public int Count() => _grants.Use(c => c.Count());
}
