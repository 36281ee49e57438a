using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>A committed blob: its index record and where it lives.</summary>
internal sealed record CachedBlob(Digest Digest, BlobRecord Record, string Path);

/// <summary>
/// The digest-keyed disk cache, and the one way in for a read of a blob (<see cref="OpenAsync"/>): it decides whether
/// the bytes come from the committed file, a fill in flight, or a new fill from the read's origin. Its jobs live beside
/// it: the fills in flight (<see cref="FillPump"/>), committing verified bytes (<see cref="BlobCommits"/>), size and eviction (<see cref="CacheSize"/>), start-up repair
/// (<see cref="BlobRepair"/>), and whether storage can take new blobs (<see cref="StorageHealth"/>).
/// </summary>
internal sealed class BlobCache : IDisposable
{
    /// <summary>How many fills a read starts or joins before it gives up (each abandoned one is retried).</summary>
    private const int MaxFillAttempts = 3;

    private readonly BlobStore _store;
    private readonly IndexDatabase _index;
    private readonly BlobRecords _blobs;
    private readonly TimeProvider _time;
    private readonly ILogger<BlobCache> _logger;
    private readonly CacheMetrics _metrics;
    private readonly StorageHealth _health;
    private readonly CacheSize _size;
    private readonly FillPump _fills;
    private readonly BlobCommits _commits;
    private readonly ITimer _flushTimer;
    private readonly VerifyOnRead _verifyOnRead;
    private long _reads;
    private int _disposed;

    /// <summary>How long after a storage failure (disk full, read-only) new blobs bypass the cache.</summary>
    public static readonly TimeSpan StorageRetryInterval = StorageHealth.RetryInterval;

    /// <param name="index">The index, opened by <see cref="IndexDatabase.Open"/> (in memory when the data directory is unusable).</param>
    public BlobCache(ProxySettings settings, TimeProvider time, CacheMetrics metrics, ILogger<BlobCache> logger, IndexDatabase index, BlobRecords blobs)
    {
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _verifyOnRead = settings.VerifyOnRead;
        _store = new BlobStore(settings.Layout);
        _index = index;
        _blobs = blobs;
        _health = new StorageHealth(time, logger);
        _fills = new FillPump(_store, _health, metrics, logger);
        _size = new CacheSize(_store, blobs, settings.MaxCacheBytes, _fills.IsFilling, time, metrics, logger);
        _commits = new BlobCommits(_store, blobs, _size, _health, logger);
        try
        {
            _store.CreateDirectories();
            if (index.Unavailable is { } reason)
            {
                _health.FailedForGood(reason); // logged by IndexDatabase.Open
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && settings.OnCacheFailure == CacheFailureMode.Passthrough)
        {
            // A read-only or broken data directory: keep proxying, cache nothing new.
            logger.CacheUnavailable(settings.DataDirectory, ex.Message);
            _health.FailedForGood(ex.Message);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CacheUnavailableException.For(settings.DataDirectory, ex);
        }

        index.WriteFailed += ex =>
        {
            _logger.IndexWriteFailed(ex.Message);
            _health.Failed(ex.Message);
        };
        BlobRepair.Reconcile(_store, blobs, _size, logger);
        _flushTimer = time.CreateTimer(_ => FlushAccessSafely(), null, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
    }

    /// <inheritdoc cref="BlobCommits.Committed"/>
    public event Action<CachedBlob>? Committed
    {
        add => _commits.Committed += value;
        remove => _commits.Committed -= value;
    }

    public long TotalBytes => _size.TotalBytes;

    public int InFlightCount => _fills.Count;

    /// <summary>Completes when the fills running now have ended (a graceful shutdown waits on it before <see cref="Dispose"/> cancels the rest).</summary>
    public Task FillsEnded() => _fills.Ended();

    /// <summary>
    /// Waits while a verified fill of <paramref name="digest"/> commits: a request right after a client got a fill's
    /// last byte (which comes before the fsync) then finds the blob as any later request does, not a fill in flight.
    /// </summary>
    public Task WaitForCommitAsync(Digest digest, CancellationToken cancellationToken) =>
        _fills.Committing(digest) is { IsCompleted: false } commit ? commit.WaitAsync(cancellationToken) : Task.CompletedTask;

    public DateTime Now => _time.GetUtcNow().UtcDateTime;

    /// <summary>
    /// True for a while after the disk failed us (full, read-only): new blobs then bypass the cache
    /// and are relayed straight from upstream, and caching is tried again after <see cref="StorageRetryInterval"/>.
    /// </summary>
    public bool IsStorageDegraded => _health.IsDegraded;

    /// <summary>A committed blob's record and path, for deciding whether it may be served; null when not cached.</summary>
    public CachedBlob? TryGet(Digest digest)
    {
        var record = _blobs.FindBlob(digest);
        if (record is null)
        {
            return null;
        }

        var path = _store.PathOf(digest);
        if (!File.Exists(path))
        {
            // Deleted behind our back: forget it rather than fail a client.
            try
            {
                _size.Forget(digest);
            }
            catch (Exception ex) when (IndexDatabase.IsStorageFailure(ex))
            {
                _health.Failed(ex.Message); // forgotten at the next lookup or start-up
            }

            return null;
        }

        return new CachedBlob(digest, record, path);
    }

    /// <summary>
    /// The one way in for a read of a blob: decides where its bytes come from. The committed file, when the caller
    /// may use it; else the fill in flight, when this reader may share it (<see cref="FillReader"/>); else a new fill
    /// from the read's origin, owned by the cache (it finishes if the client leaves). When the disk cannot take a
    /// fill now, the answer is <see cref="BlobSourceKind.Bypass"/>; an origin's refusal or fault is handed back as is.
    /// </summary>
    /// <exception cref="OperationCanceledException">The client went away (<paramref name="cancellationToken"/>).</exception>
    public async Task<BlobSource> OpenAsync(BlobRead read, CancellationToken cancellationToken)
    {
        var digest = read.Digest;
        if (read.Hit is { } hit && OpenCommitted(hit) is { } committed) // gone since it was found: filled again below
        {
            return committed;
        }

        if (!read.MayFill || IsStorageDegraded)
        {
            return BlobSource.Bypass(digest);
        }

        for (var attempt = 0; attempt < MaxFillAttempts; attempt++)
        {
            var (fill, owner) = JoinOrStart(digest, read.Reader);
            if (owner && await StartFromOriginAsync(fill, read, cancellationToken) is { } answered)
            {
                return answered;
            }

            if (!owner)
            {
                fill.Join();
            }

            var head = await fill.Head.WaitAsync(cancellationToken);
            if (head is null)
            {
                continue; // abandoned before the body (the owner was refused): try on our own account
            }

            if (!owner && !await MayJoinAsync(fill, head, read.Reader, cancellationToken))
            {
                return BlobSource.Bypass(digest);
            }

            SafeFileHandle file;
            try
            {
                file = File.OpenHandle(fill.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (FileNotFoundException)
            {
                // Already committed (renamed) or discarded between the head and our open.
                if (await fill.Completion.WaitAsync(cancellationToken) == FillOutcome.Committed && TryGet(digest) is { } done && OpenCommitted(done, filledBy: !owner) is { } source)
                {
                    return source;
                }

                continue;
            }

            return BlobSource.Filling(fill, head, file, joined: !owner);
        }

        return BlobSource.Exhausted(digest);
    }

    /// <summary>A committed blob's file, opened for reading; null when it is gone (evicted meanwhile).</summary>
    /// <param name="filledBy">See <see cref="BlobSource.Committed"/>.</param>
    public BlobSource? OpenCommitted(CachedBlob blob, bool? filledBy = null)
    {
        try
        {
            return BlobSource.Committed(blob, File.OpenHandle(blob.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete), filledBy);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The owner asks the origin. Null when the fill started; else the source that answers the read.</summary>
    private async Task<BlobSource?> StartFromOriginAsync(BlobFill fill, BlobRead read, CancellationToken cancellationToken)
    {
        OriginAnswer answer;
        try
        {
            answer = await read.Origin.FetchAsync(0, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            Abandon(fill);
            throw;
        }

        if (answer is OriginBody { Offset: 0 } body)
        {
            return StartFill(fill, body, read.Committed, read.Origin) ? null : BlobSource.PassThrough(fill.Digest, body);
        }

        Abandon(fill);
        if (answer is OriginRefusal refusal)
        {
            return BlobSource.Refused(fill.Digest, refusal);
        }

        if (answer is OriginFault fault)
        {
            return BlobSource.Unreachable(fill.Digest, fault);
        }

        answer.Dispose();
        return BlobSource.Unreachable(fill.Digest, new OriginFault("", "the origin answered a whole-blob request with a part"));
    }

    /// <summary>
    /// Whether a joiner may share this fill: same repository, and this client known to may read it, or proven by the
    /// owner's answer (same credential, or both without one), or by asking upstream (one question per credential).
    /// </summary>
    private static async Task<bool> MayJoinAsync(BlobFill fill, FillHead head, FillReader joiner, CancellationToken cancellationToken) =>
        fill.Owner.Scope == joiner.Scope
        && (joiner.KnownGood
            || (head.ProvesAccess && fill.Owner.Principal == joiner.Principal)
            || await joiner.ProveAsync(head.Size, cancellationToken));

    /// <inheritdoc cref="FillPump.JoinOrStart"/>
    public (BlobFill Fill, bool Owner) JoinOrStart(Digest digest, FillReader? reader = null) => _fills.JoinOrStart(digest, reader);

    /// <inheritdoc cref="FillPump.Abandon"/>
    public void Abandon(BlobFill fill) => _fills.Abandon(fill);

    /// <summary>
    /// Starts copying an origin's body into the fill, detached from any client. Returns false, leaving the body
    /// to the caller, when the temp file cannot even be created.
    /// </summary>
    /// <param name="committed">Runs once the blob is verified and indexed, before the fill ends (its readers may
    /// have sent the end already); its failure is logged, never the fill's.</param>
    /// <param name="resume">Asked for the rest when the body breaks mid-way (an <see cref="OriginChain"/> moves on to
    /// its next origin when the one that answered cannot go on); null: a broken body fails the fill.</param>
    public bool StartFill(BlobFill fill, OriginBody body, Action<FillHead>? committed = null, IBlobOrigin? resume = null) =>
        _fills.Start(fill, body, (head, size) => _commits.CommitFill(fill, size, head, committed), resume);

    /// <inheritdoc cref="BlobCommits.StoreSmall"/>
    public bool StoreSmall(Digest digest, ReadOnlySpan<byte> bytes, string mediaType) => _commits.StoreSmall(digest, bytes, mediaType);

    public void Touch(Digest digest) => _blobs.TouchBlob(digest, Now);

    /// <summary>Whether this whole-blob read should be hashed on the way out (<c>--verify-on-read</c>).</summary>
    public bool ShouldVerifyRead() => _verifyOnRead switch
    {
        VerifyOnRead.Always => true,
        VerifyOnRead.Sample => Interlocked.Increment(ref _reads) % 16 == 0,
        _ => false,
    };

    /// <summary>A stored file no longer matches its digest (altered on disk): delete it and forget it.</summary>
    public void Quarantine(Digest digest)
    {
        _logger.BlobCorrupt(digest.ToString());
        var size = _blobs.FindBlob(digest)?.Size ?? 0;
        if (Remove(digest))
        {
            _metrics.Evicted(size, CacheMetrics.EvictedAsCorrupt);
        }
    }

    /// <inheritdoc cref="CacheSize.Remove"/>
    public bool Remove(Digest digest) => _size.Remove(digest);

    /// <inheritdoc cref="CacheSize.EnsureCapacity"/>
    public int EnsureCapacity() => _size.EnsureCapacity();

    /// <inheritdoc cref="StorageHealth.Readiness"/>
    public (IReadOnlyList<string> Problems, IReadOnlyList<string> Degraded) Readiness() => _health.Readiness(_store.TempRoot, _index);

    private void FlushAccessSafely()
    {
        try
        {
            _blobs.FlushAccess();
        }
        catch (Exception ex) when (ex is LiteDB.LiteException or IOException or ObjectDisposedException)
        {
            _logger.IndexFlushFailed(ex.Message);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _fills.Dispose();
        _flushTimer.Dispose();
    }
}
