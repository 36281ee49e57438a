using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using LiteDB;

namespace MitmCache.Caching;

/// <summary>
/// The LiteDB index of the cache: blobs, repository links, tags, visibility, registry challenges and grants.
/// One <see cref="LiteDatabase"/> per process (direct mode is thread-safe). Last-access times are kept
/// in memory and written in batches, so a cache hit never writes the index.
/// </summary>
/// <remarks>
/// LiteDB closes its engine for good after an I/O error (a full disk) or a damaged page, and every
/// later call throws the same error. The proxy must not stay broken after space returns, so an
/// operation that meets a dead engine retires it, and the next one reopens the file (at most once per
/// <see cref="ReopenInterval"/>); LiteDB's log keeps every committed transaction across the reopen.
/// Operations hold a read lock and closing or retiring takes the write lock, so no transaction is ever
/// cut off by a dispose on another thread. Queries return lists: a lazy LiteDB enumerator owns a
/// transaction on the thread that started it and must not outlive the lock.
/// </remarks>
internal sealed class CacheIndex : IDisposable
{
    /// <summary>The shortest time between two attempts to reopen a failed index.</summary>
    public static readonly TimeSpan ReopenInterval = TimeSpan.FromSeconds(1);

    private readonly ConnectionString _connection;
    private readonly FileStream? _lock;
    private readonly TimeProvider _time;
    private readonly ReaderWriterLockSlim _gate = new(LockRecursionPolicy.NoRecursion);
    private readonly ConcurrentDictionary<string, (DateTime At, long Hits)> _pendingAccess = new();

    // What every hit looks up (blob, link, visibility), kept in memory; see IndexFront.
    private const int FrontCapacity = 10_000;
    private readonly IndexFront<BlobRecord> _blobFront = new(FrontCapacity);
    private readonly IndexFront<LinkRecord> _linkFront = new(FrontCapacity);
    private readonly IndexFront<RepositoryRecord> _repositoryFront = new(FrontCapacity);
    // Entry counts for /metrics: counted once, then kept in step by every blob write under this lock, so a
    // scrape costs nothing however large the index (counting 1M records took 3.6 s a scrape).
    private readonly Lock _countGate = new();
    private BlobCounts? _counts;
    private IndexStore? _store;
    private (ExceptionDispatchInfo Error, long At)? _reopenFailure;
    private bool _disposed;

    /// <param name="time">The clock of <see cref="ReopenInterval"/>; the system's by default.</param>
    /// <exception cref="CacheLockedException">Another process has this index open.</exception>
    public CacheIndex(string path, TimeProvider? time = null)
        : this(new ConnectionString { Filename = path, Connection = ConnectionType.Direct }, Lock(Configuration.DataLayout.LockOf(path)), time ?? TimeProvider.System)
    {
    }

    private CacheIndex(ConnectionString connection, FileStream? fileLock, TimeProvider time)
    {
        _connection = connection;
        _lock = fileLock;
        _time = time;
        try
        {
            _store = new IndexStore(connection);
        }
        catch
        {
            _lock?.Dispose(); // an unreadable file: let OpenOrRebuild move it aside and take the lock again
            throw;
        }
    }

    /// <summary>How many times the index was reopened after its engine failed.</summary>
    public int Reopens { get; private set; }

    /// <summary>An index that lives in memory only: the pass-through mode for an unusable data directory.</summary>
    public static CacheIndex InMemory() => new(new ConnectionString { Filename = ":memory:" }, fileLock: null, TimeProvider.System);

    /// <summary>
    /// Opens the index and reads every document once. A file LiteDB cannot read (torn, scribbled,
    /// not a database) is moved aside with its log and a new, empty index is created; the caller
    /// rebuilds it from the blob files. Returns the path the broken file was moved to, or null.
    /// Permission and locking errors are not corruption and are thrown.
    /// </summary>
    public static CacheIndex OpenOrRebuild(string path, TimeProvider time, out string? movedAside)
    {
        movedAside = null;
        try
        {
            var index = new CacheIndex(path, time);
            try
            {
                index.Validate();
                return index;
            }
            catch
            {
                index.Dispose(flush: false);
                throw;
            }
        }
        catch (Exception ex) when (IsCorruption(ex))
        {
            movedAside = Configuration.DataLayout.CorruptCopyOf(path, time.GetUtcNow());
            File.Move(path, movedAside, overwrite: true);
            var log = Configuration.DataLayout.LogOf(path);
            if (File.Exists(log))
            {
                File.Move(log, movedAside + "-log", overwrite: true);
            }

            return new CacheIndex(path, time);
        }
    }

    private static bool IsCorruption(Exception ex) =>
        ex is LiteException or ArgumentException or InvalidOperationException or IndexOutOfRangeException
            or InvalidCastException or FormatException or OverflowException or NullReferenceException
            or InvalidDataException or EndOfStreamException;

    /// <summary>What LiteDB throws once its engine has closed itself (see the remarks).</summary>
    private static bool IsEngineFailure(Exception ex) =>
        ex is IOException or LiteException { ErrorCode: LiteException.ENGINE_DISPOSED or InvalidDatafileState };

    // LiteDB's code for a failed internal consistency check (ENSURE), after which the engine is closed.
    private const int InvalidDatafileState = 999;

    private void Validate() => Use(s =>
    {
        _ = s.Blobs.FindAll().Count();
        _ = s.Links.FindAll().Count();
        _ = s.Tags.FindAll().Count();
        _ = s.Repositories.FindAll().Count();
        _ = s.Challenges.FindAll().Count();
        _ = s.Grants.FindAll().Count();
        return 0;
    });

    /// <summary>Raised when a bookkeeping write could not be stored (see "Links" below).</summary>
    public event Action<Exception>? WriteFailed;

    /// <summary>What a failed index call throws when storage, not the caller, is at fault.</summary>
    public static bool IsStorageFailure(Exception ex) => IsEngineFailure(ex);

    private bool TryWrite(Action<IndexStore> write)
    {
        try
        {
            Use(write);
            return true;
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            WriteFailed?.Invoke(ex);
            return false;
        }
    }

    /// <summary>Runs one operation on the open database, reopening it first if a failure retired it.</summary>
    private T Use<T>(Func<IndexStore, T> operation)
    {
        while (true)
        {
            IndexStore? failed = null;
            ExceptionDispatchInfo? failure = null;
            _gate.EnterReadLock();
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_store is { } store)
                {
                    try
                    {
                        return operation(store);
                    }
                    catch (Exception ex) when (IsEngineFailure(ex))
                    {
                        failed = store;
                        failure = ExceptionDispatchInfo.Capture(ex);
                    }
                }
            }
            finally
            {
                _gate.ExitReadLock();
            }

            if (failure is not null)
            {
                Retire(failed!);
                failure.Throw();
            }

            Reopen();
        }
    }

    private void Use(Action<IndexStore> operation) => Use(s =>
    {
        operation(s);
        return true;
    });

    private void Retire(IndexStore failed)
    {
        _gate.EnterWriteLock();
        try
        {
            if (ReferenceEquals(_store, failed))
            {
                _store = null;
                _counts = null; // a write that failed with the engine may have landed or not: count again
                failed.Dispose();
            }
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    private void Reopen()
    {
        _gate.EnterWriteLock();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_store is not null)
            {
                return;
            }

            if (_reopenFailure is { } last && _time.GetElapsedTime(last.At) < ReopenInterval)
            {
                last.Error.Throw();
            }

            try
            {
                _store = new IndexStore(_connection);
                _reopenFailure = null;
                Reopens++;
            }
            catch (Exception ex) when (IsEngineFailure(ex) || IsCorruption(ex))
            {
                _reopenFailure = (ExceptionDispatchInfo.Capture(ex), _time.GetTimestamp());
                throw;
            }
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    // Blobs

    public BlobRecord? FindBlob(string digest) => Use(s => _blobFront.Find(digest, () => s.Blobs.FindById(digest)))?.Copy();

    public List<BlobRecord> AllBlobs() => Use(s => s.Blobs.FindAll().ToList());

    public long TotalBlobBytes() => Use(s => s.Blobs.FindAll().Sum(b => b.Size));

    /// <summary>Blob records held, and how many are manifests; a full count only the first time.</summary>
    public BlobCounts CountBlobs() => Use(s =>
    {
        lock (_countGate)
        {
            return _counts ??= s.Blobs.FindAll().Aggregate(default(BlobCounts), (counts, record) => counts.With(record));
        }
    });

    /// <summary>Throws when the index cannot be read. One key lookup, whatever the index holds (for /readyz).</summary>
    public void Probe() => Use(s => s.Blobs.FindById("probe"));

    public void UpsertBlob(BlobRecord record)
    {
        var kept = record.Copy();
        Use(s =>
        {
            lock (_countGate)
            {
                var previous = _counts is null ? null : s.Blobs.FindById(kept.Id);
                _blobFront.Write(kept.Id, kept, () => s.Blobs.Upsert(kept));
                _counts = _counts?.Without(previous).With(kept);
            }
        });
    }

    public void DeleteBlob(string digest)
    {
        Use(s =>
        {
            lock (_countGate)
            {
                var previous = _counts is null ? null : s.Blobs.FindById(digest);
                _blobFront.Write(digest, null, () => s.Blobs.Delete(digest));
                _counts = _counts?.Without(previous);
            }
        });
        _pendingAccess.TryRemove(digest, out _);
    }

    /// <summary>Notes a hit in memory; <see cref="FlushAccess"/> writes it.</summary>
    public void TouchBlob(string digest, DateTime at) =>
        _pendingAccess.AddOrUpdate(digest, (at, 1), (_, old) => (at, old.Hits + 1));

    public int FlushAccess() => Use(FlushAccess);

    private int FlushAccess(IndexStore store)
    {
        var written = 0;
        foreach (var digest in _pendingAccess.Keys)
        {
            if (!_pendingAccess.TryRemove(digest, out var access))
            {
                continue;
            }

            var record = store.Blobs.FindById(digest);
            if (record is null)
            {
                continue;
            }

            record.LastAccess = access.At > record.LastAccess ? access.At : record.LastAccess;
            record.Hits += access.Hits;
            _blobFront.Write(digest, record.Copy(), () => store.Blobs.Update(record));
            written++;
        }

        return written;
    }

    /// <summary>Least recently used first; call <see cref="FlushAccess"/> before for exact order.</summary>
    /// <remarks>
    /// Read a page at a time, so eviction and prune never hold a large index in memory (1M records are
    /// about 500 MB on disk). Each page starts after the last record returned, so deleting the records
    /// already returned is fine; a record touched meanwhile can come round again, later in the order.
    /// </remarks>
    public IEnumerable<BlobRecord> BlobsByLastAccess(int pageSize = 1024)
    {
        var after = DateTime.MinValue;
        var returnedAtAfter = new HashSet<string>(StringComparer.Ordinal); // ties: records at exactly `after`
        while (true)
        {
            var (from, skip) = (after, returnedAtAfter.Count);
            var page = Use(s => s.Blobs.Query().Where(b => b.LastAccess >= from).OrderBy(b => b.LastAccess).Limit(pageSize + skip).ToList());
            var returned = 0;
            foreach (var record in page)
            {
                if (record.LastAccess == after && !returnedAtAfter.Add(record.Id))
                {
                    continue;
                }

                if (record.LastAccess != after)
                {
                    after = record.LastAccess;
                    returnedAtAfter = new(StringComparer.Ordinal) { record.Id };
                }

                returned++;
                yield return record;
            }

            if (returned == 0 || page.Count < pageSize + skip)
            {
                yield break;
            }
        }
    }

    // Links, visibility, tags, challenges and grants are bookkeeping written while a request is served:
    // their writes report storage failures (a full disk) by returning false and raising WriteFailed
    // instead of failing the request. A lost write only makes a later answer stricter (not linked,
    // private, no grant) or turns a later hit into a miss; callers that must not lose one check the result.

    public bool Link(string registry, string repository, string digest, DateTime at)
    {
        var link = new LinkRecord
        {
            Id = LinkRecord.MakeId(registry, repository, digest),
            Registry = registry,
            Repository = repository,
            Digest = digest,
            SeenAt = at,
        };
        return TryWrite(s => _linkFront.Write(link.Id, link, () => s.Links.Upsert(link)));
    }

    public bool IsLinked(string registry, string repository, string digest)
    {
        var id = LinkRecord.MakeId(registry, repository, digest);
        return Use(s => _linkFront.Find(id, () => s.Links.FindById(id)) is not null);
    }

    public List<LinkRecord> LinksOf(string digest) => Use(s => s.Links.Find(l => l.Digest == digest).ToList());

    public List<LinkRecord> AllLinks() => Use(s => s.Links.FindAll().ToList());

    public void DeleteLinksOf(string digest) => Use(s => _linkFront.WriteMany(() => s.Links.DeleteMany(l => l.Digest == digest)));

    public bool? IsPublic(string registry, string repository) => FindRepository(registry, repository)?.Public;

    public RepositoryRecord? FindRepository(string registry, string repository)
    {
        var id = $"{registry}/{repository}";
        return Use(s => _repositoryFront.Find(id, () => s.Repositories.FindById(id)));
    }

    public bool SetVisibility(string registry, string repository, bool isPublic, DateTime at)
    {
        var record = new RepositoryRecord { Id = $"{registry}/{repository}", Public = isPublic, UpdatedAt = at };
        return TryWrite(s => _repositoryFront.Write(record.Id, record, () => s.Repositories.Upsert(record)));
    }

    // Tags

    public bool PutTag(TagRecord record)
    {
        // The Accept set is client input of any length: key by its hash (LiteDB ids are < 1023 bytes).
        record.Id = $"{record.TagKey}|{Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(record.AcceptKey)))[..32]}";
        return TryWrite(s => s.Tags.Upsert(record));
    }

    public List<TagRecord> FindTags(string registry, string repository, string tag)
    {
        var key = TagRecord.MakeTagKey(registry, repository, tag);
        return Use(s => s.Tags.Find(t => t.TagKey == key).ToList());
    }

    public List<TagRecord> AllTags() => Use(s => s.Tags.FindAll().ToList());

    public void DeleteTagsPointingTo(string digest) => Use(s => s.Tags.DeleteMany(t => t.Digest == digest));

    // Challenges

    public ChallengeRecord? FindChallenge(string registry) => Use(s => s.Challenges.FindById(registry));

    public List<ChallengeRecord> AllChallenges() => Use(s => s.Challenges.FindAll().ToList());

    public bool PutChallenge(ChallengeRecord record) => TryWrite(s => s.Challenges.Upsert(record));

    // Grants

    public GrantRecord? FindGrant(string credentialKey, string registry, string repository) =>
        Use(s => s.Grants.FindById(GrantRecord.MakeId(credentialKey, registry, repository)));

    public bool PutGrant(GrantRecord grant)
    {
        grant.Id = GrantRecord.MakeId(grant.CredentialKey, grant.Registry, grant.Repository);
        return TryWrite(s => s.Grants.Upsert(grant));
    }

    public bool DeleteGrant(string credentialKey, string registry, string repository) =>
        TryWrite(s => s.Grants.Delete(GrantRecord.MakeId(credentialKey, registry, repository)));

    /// <summary>Drops every grant of a registry, or of one repository in it. Returns how many.</summary>
    public int DeleteGrants(string registry, string? repository) =>
        Use(s => s.Grants.DeleteMany(g => g.Registry == registry && (repository == null || g.Repository == repository)));

    public int DeleteExpiredGrants(DateTime now) => Use(s => s.Grants.DeleteMany(g => g.Expires <= now));

    // Blob store uploads: the rules are UploadQueue's, the index only keeps them.

    public T UseUploads<T>(Func<ILiteCollection<ObjectStore.UploadRecord>, T> operation) => Use(s => operation(s.Uploads));

    public void Checkpoint() => Use(s => s.Checkpoint());

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

    /// <summary>Waits for operations in flight, writes pending access times, closes the database and releases the lock.</summary>
    public void Dispose() => Dispose(flush: true);

    private void Dispose(bool flush)
    {
        _gate.EnterWriteLock();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            try
            {
                if (flush && _store is { } store)
                {
                    FlushAccess(store);
                }
            }
            catch (Exception ex) when (IsEngineFailure(ex))
            {
                // The access times are hints for eviction order; losing the last batch is harmless.
            }
            finally
            {
                _store?.Dispose();
                _store = null;
                _lock?.Dispose();
            }
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }
}
