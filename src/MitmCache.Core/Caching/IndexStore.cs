using LiteDB;
using MitmCache.ObjectStore;

namespace MitmCache.Caching;

/// <summary>The open database and its collections; replaced as a whole when the engine fails.</summary>
internal sealed class IndexStore : IDisposable
{
    private readonly LiteDatabase _database;

    public IndexStore(ConnectionString connection)
    {
        _database = new LiteDatabase(connection, new BsonMapper())
        {
            UtcDate = true, // times come back as UTC, as they are compared with the UTC clock
        };
        try
        {
            Blobs = _database.GetCollection<BlobRecord>("blobs");
            Links = _database.GetCollection<LinkRecord>("links");
            Tags = _database.GetCollection<TagRecord>("tags");
            Repositories = _database.GetCollection<RepositoryRecord>("repositories");
            Challenges = _database.GetCollection<ChallengeRecord>("challenges");
            Grants = _database.GetCollection<GrantRecord>("grants");
            Uploads = _database.GetCollection<UploadRecord>("blob_uploads");
            Uploads.EnsureIndex(u => u.NextAttemptAt);
            Grants.EnsureIndex(g => g.Registry);
            Blobs.EnsureIndex(b => b.LastAccess);
            Links.EnsureIndex(l => l.Digest);
            Tags.EnsureIndex(t => t.TagKey);
            Tags.EnsureIndex(t => t.Digest);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public ILiteCollection<BlobRecord> Blobs { get; }

    public ILiteCollection<LinkRecord> Links { get; }

    public ILiteCollection<TagRecord> Tags { get; }

    public ILiteCollection<RepositoryRecord> Repositories { get; }

    public ILiteCollection<ChallengeRecord> Challenges { get; }

    public ILiteCollection<GrantRecord> Grants { get; }

    /// <summary>Uploads to the blob store still to do (<see cref="UploadQueue"/>).</summary>
    public ILiteCollection<UploadRecord> Uploads { get; }

    public void Checkpoint() => _database.Checkpoint();

    public void Dispose()
    {
        _database.Dispose();
        LiteDbTransactions.SuppressFinalizers(_database);
    }
}
