using MitmCache.Caching;

namespace MitmCache.Registry;

/// <summary>
/// Each registry's last answer to a client without credentials (collection <c>challenges</c>), one record per
/// registry rewritten in place, so it grows with the registries clients use, not with traffic. Read and written
/// through <see cref="RegistryChallenges"/> only.
/// </summary>
internal sealed class ChallengeRecords
{
    private readonly IndexCollection<ChallengeRecord> _challenges;

    public ChallengeRecords(IndexDatabase database) =>
        _challenges = database.Collection<ChallengeRecord>(IndexSchema.Challenges);

    public ChallengeRecord? FindChallenge(string registry) => _challenges.Use(c => c.FindById(registry));

    public List<ChallengeRecord> AllChallenges() => _challenges.Use(c => c.FindAll().ToList());

    /// <summary>A bookkeeping write: false when storage failed (see <see cref="IndexDatabase.TryWrite"/>).</summary>
    public bool PutChallenge(ChallengeRecord record) => _challenges.TryWrite(c => c.Upsert(record));
}
