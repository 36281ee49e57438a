using System.Collections.Concurrent;
using LiteDB;

namespace MitmCache.Caching;

/// <summary>
/// The LiteDB index of the cache: blobs, repository links, tags, visibility and registry challenges.
/// One <see cref="LiteDatabase"/> per process (direct mode is thread-safe). Last-access times are kept
/// in memory and written in batches, so a cache hit never writes the index.
/// </summary>
internal sealed class CacheIndex : IDisposable
{
    private readonly LiteDatabase _database;
    private readonly ILiteCollection<BlobRecord> _blobs;
    private readonly ILiteCollection<LinkRecord> _links;
    private readonly ILiteCollection<TagRecord> _tags;
    private readonly ILiteCollection<RepositoryRecord> _repositories;
    private readonly ILiteCollection<ChallengeRecord> _challenges;
    private readonly ILiteCollection<GrantRecord> _grants;
    private readonly ConcurrentDictionary<string, (DateTime At, long Hits)> _pendingAccess = new();
    private readonly FileStream? _lock;

    /// <exception cref="CacheLockedException">Another process has this index open.</exception>
    public CacheIndex(string path)
        : this(new ConnectionString { Filename = path, Connection = ConnectionType.Direct }, Lock(path + ".lock"))
    {
    }

    private CacheIndex(ConnectionString connection, FileStream? fileLock)
    {
        _lock = fileLock;
        try
        {
            _database = new LiteDatabase(connection, new BsonMapper())
            {
                UtcDate = true, // times come back as UTC, as they are compared with the UTC clock
            };
            _blobs = _database.GetCollection<BlobRecord>("blobs");
            _links = _database.GetCollection<LinkRecord>("links");
            _tags = _database.GetCollection<TagRecord>("tags");
            _repositories = _database.GetCollection<RepositoryRecord>("repositories");
            _challenges = _database.GetCollection<ChallengeRecord>("challenges");
            _grants = _database.GetCollection<GrantRecord>("grants");
            _grants.EnsureIndex(g => g.Registry);
            _blobs.EnsureIndex(b => b.LastAccess);
            _links.EnsureIndex(l => l.Digest);
            _tags.EnsureIndex(t => t.TagKey);
            _tags.EnsureIndex(t => t.Digest);
        }
        catch
        {
            Close(); // an unreadable file: let OpenOrRebuild move it aside and take the lock again
            throw;
        }
    }

    /// <summary>An index that lives in memory only: the pass-through mode for an unusable data directory.</summary>
    public static CacheIndex InMemory() => new(new ConnectionString { Filename = ":memory:" }, fileLock: null);

    /// <summary>
    /// Opens the index and reads every document once. A file LiteDB cannot read (torn, scribbled,
    /// not a database) is moved aside with its log and a new, empty index is created; the caller
    /// rebuilds it from the blob files. Returns the path the broken file was moved to, or null.
    /// Permission and locking errors are not corruption and are thrown.
    /// </summary>
    public static CacheIndex OpenOrRebuild(string path, DateTimeOffset now, out string? movedAside)
    {
        movedAside = null;
        try
        {
            var index = new CacheIndex(path);
            try
            {
                index.Validate();
                return index;
            }
            catch
            {
                index.Close();
                throw;
            }
        }
        catch (Exception ex) when (IsCorruption(ex))
        {
            movedAside = $"{path}.corrupt-{now:yyyyMMddTHHmmssZ}";
            File.Move(path, movedAside, overwrite: true);
            var log = System.IO.Path.ChangeExtension(path, null) + "-log.db";
            if (File.Exists(log))
            {
                File.Move(log, movedAside + "-log", overwrite: true);
            }

            return new CacheIndex(path);
        }
    }

    private static bool IsCorruption(Exception ex) =>
        ex is LiteException or ArgumentException or InvalidOperationException or IndexOutOfRangeException
            or InvalidCastException or FormatException or OverflowException or NullReferenceException
            or InvalidDataException or EndOfStreamException;

    private void Validate()
    {
        _ = _blobs.FindAll().Count();
        _ = _links.FindAll().Count();
        _ = _tags.FindAll().Count();
        _ = _repositories.FindAll().Count();
        _ = _challenges.FindAll().Count();
        _ = _grants.FindAll().Count();
    }

    // Blobs

    public BlobRecord? FindBlob(string digest) => _blobs.FindById(digest);

    public IEnumerable<BlobRecord> AllBlobs() => _blobs.FindAll();

    public long TotalBlobBytes() => _blobs.FindAll().Sum(b => b.Size);

    public int BlobCount() => _blobs.Count();

    /// <summary>How many blobs have one of these media types (counted by the engine, no documents mapped).</summary>
    public int CountBlobsOfType(IEnumerable<string> mediaTypes) =>
        _blobs.Count(Query.In(nameof(BlobRecord.MediaType), mediaTypes.Select(t => new BsonValue(t))));

    public void UpsertBlob(BlobRecord record) => _blobs.Upsert(record);

    public void DeleteBlob(string digest)
    {
        _blobs.Delete(digest);
        _pendingAccess.TryRemove(digest, out _);
    }

    /// <summary>Notes a hit in memory; <see cref="FlushAccess"/> writes it.</summary>
    public void TouchBlob(string digest, DateTime at) =>
        _pendingAccess.AddOrUpdate(digest, (at, 1), (_, old) => (at, old.Hits + 1));

    public int FlushAccess()
    {
        var written = 0;
        foreach (var digest in _pendingAccess.Keys)
        {
            if (!_pendingAccess.TryRemove(digest, out var access))
            {
                continue;
            }

            var record = _blobs.FindById(digest);
            if (record is null)
            {
                continue;
            }

            record.LastAccess = access.At > record.LastAccess ? access.At : record.LastAccess;
            record.Hits += access.Hits;
            _blobs.Update(record);
            written++;
        }

        return written;
    }

    /// <summary>Least recently used first; call <see cref="FlushAccess"/> before for exact order.</summary>
    public IEnumerable<BlobRecord> BlobsByLastAccess() => _blobs.Query().OrderBy(b => b.LastAccess).ToEnumerable();

    // Links and visibility

    public void Link(string registry, string repository, string digest, DateTime at) =>
        _links.Upsert(new LinkRecord
        {
            Id = LinkRecord.MakeId(registry, repository, digest),
            Registry = registry,
            Repository = repository,
            Digest = digest,
            SeenAt = at,
        });

    public bool IsLinked(string registry, string repository, string digest) =>
        _links.FindById(LinkRecord.MakeId(registry, repository, digest)) is not null;

    public IEnumerable<LinkRecord> LinksOf(string digest) => _links.Find(l => l.Digest == digest);

    public IEnumerable<LinkRecord> AllLinks() => _links.FindAll();

    public void DeleteLinksOf(string digest) => _links.DeleteMany(l => l.Digest == digest);

    public bool? IsPublic(string registry, string repository) => _repositories.FindById($"{registry}/{repository}")?.Public;

    public void SetVisibility(string registry, string repository, bool isPublic, DateTime at) =>
        _repositories.Upsert(new RepositoryRecord { Id = $"{registry}/{repository}", Public = isPublic, UpdatedAt = at });

    // Tags

    public void PutTag(TagRecord record)
    {
        // The Accept set is client input of any length: key by its hash (LiteDB ids are < 1023 bytes).
        record.Id = $"{record.TagKey}|{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(record.AcceptKey)))[..32]}";
        _tags.Upsert(record);
    }

    public IReadOnlyList<TagRecord> FindTags(string registry, string repository, string tag)
    {
        var key = TagRecord.MakeTagKey(registry, repository, tag);
        return _tags.Find(t => t.TagKey == key).ToList();
    }

    public IEnumerable<TagRecord> AllTags() => _tags.FindAll();

    public void DeleteTagsPointingTo(string digest) => _tags.DeleteMany(t => t.Digest == digest);

    // Challenges

    public ChallengeRecord? FindChallenge(string registry) => _challenges.FindById(registry);

    public IEnumerable<ChallengeRecord> AllChallenges() => _challenges.FindAll();

    public void PutChallenge(ChallengeRecord record) => _challenges.Upsert(record);

    // Grants

    public GrantRecord? FindGrant(string credentialKey, string registry, string repository) =>
        _grants.FindById(GrantRecord.MakeId(credentialKey, registry, repository));

    public void PutGrant(GrantRecord grant)
    {
        grant.Id = GrantRecord.MakeId(grant.CredentialKey, grant.Registry, grant.Repository);
        _grants.Upsert(grant);
    }

    public void DeleteGrant(string credentialKey, string registry, string repository) =>
        _grants.Delete(GrantRecord.MakeId(credentialKey, registry, repository));

    /// <summary>Drops every grant of a registry, or of one repository in it. Returns how many.</summary>
    public int DeleteGrants(string registry, string? repository) =>
        _grants.DeleteMany(g => g.Registry == registry && (repository == null || g.Repository == repository));

    public int DeleteExpiredGrants(DateTime now) => _grants.DeleteMany(g => g.Expires <= now);

    public void Checkpoint() => _database.Checkpoint();

    /// <summary>
    /// LiteDB's direct mode assumes one process per file but does not enforce it on Linux (its FileShare
    /// becomes a shared advisory lock), so a second proxy, or <c>mitmcache cache</c> on the data directory
    /// of a running one, would write the same file. An exclusive lock on a side file makes it fail instead;
    /// the kernel drops the lock when the process dies, so a crash leaves nothing to clean up.
    /// </summary>
    private static FileStream Lock(string path)
    {
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (ex.GetType() == typeof(IOException) && ex.HResult is EWouldBlock or SharingViolation)
        {
            // Other failures (read-only or missing directory, permissions) are not a lock: they go up unchanged.
            throw new CacheLockedException($"the cache index is in use by another process (a running proxy?): {path} is locked", ex);
        }
    }

    // What .NET reports when the lock is held: flock's errno on Linux, ERROR_SHARING_VIOLATION on Windows.
    private const int EWouldBlock = 11;
    private const int SharingViolation = unchecked((int)0x80070020);

    /// <summary>Closes the database and releases the lock, without flushing.</summary>
    private void Close()
    {
        _database?.Dispose();
        _lock?.Dispose();
    }

    public void Dispose()
    {
        try
        {
            FlushAccess();
        }
        finally
        {
            Close();
        }
    }
}
