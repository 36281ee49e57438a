using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Caching;

/// <summary>An index and every store over it, as the host's container builds them; disposing closes the index.</summary>
internal sealed class TestIndex : IDisposable
{
    public TestIndex(string path, TimeProvider? time = null)
    {
        Database = new IndexDatabase(path, time);
        Links = new LinkRecords(Database);
        Tags = new TagRecords(Database);
        Blobs = new BlobRecords(Database, Links, Tags);
        Grants = new GrantRecords(Database);
        Visibility = new RepositoryVisibility(Database);
        Challenges = new ChallengeRecords(Database);
    }

    public IndexDatabase Database { get; }

    public BlobRecords Blobs { get; }

    public LinkRecords Links { get; }

    public TagRecords Tags { get; }

    public GrantRecords Grants { get; }

    public RepositoryVisibility Visibility { get; }

    public ChallengeRecords Challenges { get; }

    public void Dispose() => Database.Dispose();
}
