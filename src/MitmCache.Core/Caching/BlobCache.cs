using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.Caching;

/// <summary>A committed blob: its index record and where it lives.</summary>
internal sealed record CachedBlob(Digest Digest, BlobRecord Record, string Path);

/// <summary>
/// The digest-keyed disk cache: hits, one in-flight fill per digest, verify-then-commit, the size cap
/// with LRU eviction, and start-up repair. Fills belong to the cache, not to the client that started
/// them: they finish when that client goes away, because another node will want the blob.
/// </summary>
internal sealed class BlobCache : IDisposable
{
    private static readonly TimeSpan s_stallTimeout = TimeSpan.FromSeconds(60);

    /// <summary>How many fills a read starts or joins before it gives up (each abandoned one is retried).</summary>
    private const int MaxFillAttempts = 3;

    private readonly BlobStore _store;
    private readonly IndexDatabase _index;
    private readonly BlobRecords _blobs;
    private readonly TimeProvider _time;
    private readonly ILogger<BlobCache> _logger;
    private readonly CacheMetrics _metrics;
    private readonly long _maxBytes;
    private readonly ConcurrentDictionary<Digest, BlobFill> _inFlight = new();
    private readonly ConcurrentDictionary<Task, bool> _fillTasks = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _evictionGate = new();
    private readonly Lock _sizeGate = new(); // a record's write and its change to _totalBytes, as one step
    private readonly ITimer _flushTimer;
    private long _totalBytes;
    private int _disposed;
    private long _reads;
    private readonly VerifyOnRead _verifyOnRead;
    private volatile StorageFailure? _storageFailure;

    /// <summary>How long after a storage failure (disk full, read-only) new blobs bypass the cache.</summary>
    public static readonly TimeSpan StorageRetryInterval = TimeSpan.FromSeconds(5);

    private sealed record StorageFailure(string Message, DateTimeOffset At);

    /// <param name="index">The index, opened by <see cref="IndexDatabase.Open"/> (in memory when the data directory is unusable).</param>
    public BlobCache(ProxySettings settings, TimeProvider time, CacheMetrics metrics, ILogger<BlobCache> logger, IndexDatabase index, BlobRecords blobs)
    {
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _maxBytes = settings.MaxCacheBytes;
        _verifyOnRead = settings.VerifyOnRead;
        _store = new BlobStore(settings.Layout);
        _index = index;
        _blobs = blobs;
        try
        {
            _store.CreateDirectories();
            if (index.Unavailable is { } reason)
            {
                _storageFailure = new StorageFailure(reason, DateTimeOffset.MaxValue); // logged by IndexDatabase.Open
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && settings.OnCacheFailure == CacheFailureMode.Passthrough)
        {
            // A read-only or broken data directory: keep proxying, cache nothing new.
            logger.CacheUnavailable(settings.DataDirectory, ex.Message);
            _storageFailure = new StorageFailure(ex.Message, DateTimeOffset.MaxValue);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CacheUnavailableException.For(settings.DataDirectory, ex);
        }

        index.WriteFailed += ex =>
        {
            _logger.IndexWriteFailed(ex.Message);
            MarkStorageFailed(ex.Message);
        };
        Reconcile();
        _flushTimer = time.CreateTimer(_ => FlushAccessSafely(), null, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Raised once a blob is committed and indexed: after a fill commits (before its readers see the end), and after
    /// <see cref="StoreSmall"/> stores a manifest it did not have. For work that follows a commit (an upload to a
    /// shared bucket): keep it short, hand slow work off. A subscriber that throws is logged, never the fill's failure.
    /// </summary>
    public event Action<CachedBlob>? Committed;

    public long TotalBytes => Interlocked.Read(ref _totalBytes);

    public int InFlightCount => _inFlight.Count;

    /// <summary>Completes when the fills running now have ended (a graceful shutdown waits on it before <see cref="Dispose"/> cancels the rest).</summary>
    public Task FillsEnded() => Task.WhenAll(_fillTasks.Keys);

    public DateTime Now => _time.GetUtcNow().UtcDateTime;

    public CachedBlob? TryGet(Digest digest)
    {
        var record = _blobs.FindBlob(digest.ToString());
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
                Forget(digest);
            }
            catch (Exception ex) when (IndexDatabase.IsStorageFailure(ex))
            {
                MarkStorageFailed(ex.Message); // forgotten at the next lookup or start-up
            }

            return null;
        }

        return new CachedBlob(digest, record, path);
    }

    public void Touch(Digest digest) => _blobs.TouchBlob(digest.ToString(), Now);

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
        var size = _blobs.FindBlob(digest.ToString())?.Size ?? 0;
        if (Remove(digest))
        {
            _metrics.Evicted(size, CacheMetrics.EvictedAsCorrupt);
        }
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
        if (read.UseCommitted && TryGet(digest) is { } hit && OpenCommitted(hit) is { } committed)
        {
            return committed;
        }

        if (IsStorageDegraded)
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
                if (await fill.Completion.WaitAsync(cancellationToken) == FillOutcome.Committed && TryGet(digest) is { } done && OpenCommitted(done) is { } source)
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
    public BlobSource? OpenCommitted(CachedBlob blob)
    {
        try
        {
            return BlobSource.Committed(blob, File.OpenHandle(blob.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
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
            return StartFill(fill, body, read.Committed) ? null : BlobSource.PassThrough(fill.Digest, body);
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

    /// <summary>Joins the fill in flight for <paramref name="digest"/>, or registers a new one owned by the caller.</summary>
    public (BlobFill Fill, bool Owner) JoinOrStart(Digest digest, FillReader? reader = null)
    {
        while (true)
        {
            if (_inFlight.TryGetValue(digest, out var existing))
            {
                return (existing, false);
            }

            var fill = new BlobFill(digest, _store.NewTempPath(digest), _store.PathOf(digest), reader);
            if (_inFlight.TryAdd(digest, fill))
            {
                return (fill, true);
            }
        }
    }

    /// <summary>The owner's upstream did not answer 200: release the digest so joiners try for themselves.</summary>
    public void Abandon(BlobFill fill)
    {
        _inFlight.TryRemove(new KeyValuePair<Digest, BlobFill>(fill.Digest, fill));
        fill.Complete(FillOutcome.Abandoned);
    }

    /// <summary>
    /// True for a while after the disk failed us (full, read-only): new blobs then bypass the cache
    /// and are relayed straight from upstream, and caching is tried again after <see cref="StorageRetryInterval"/>.
    /// </summary>
    public bool IsStorageDegraded => _storageFailure is { } failure
        && (failure.At == DateTimeOffset.MaxValue || _time.GetUtcNow() - failure.At < StorageRetryInterval);

    private void ReportStorageFailure(string digest, string message)
    {
        _logger.FillStorageFailed(digest, message);
        MarkStorageFailed(message);
    }

    private void MarkStorageFailed(string message)
    {
        if (_storageFailure?.At != DateTimeOffset.MaxValue)
        {
            _storageFailure = new StorageFailure(message, _time.GetUtcNow());
        }
    }

    /// <summary>
    /// Starts copying an origin's body into the fill, detached from any client. Returns false, leaving the body
    /// to the caller, when the temp file cannot even be created.
    /// </summary>
    /// <param name="committed">Runs once the blob is verified and indexed, before any reader sees its end; its
    /// failure is logged, never the fill's.</param>
    public bool StartFill(BlobFill fill, OriginBody body, Action<FillHead>? committed = null)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(fill.TempPath, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            ReportStorageFailure(fill.Digest.ToString(), ex.Message);
            Finish(fill, FillOutcome.StorageError);
            return false;
        }

        var head = new FillHead(body.Length, body.MediaType, body.ProvesAccess);
        fill.SetHead(head);
        _metrics.FillStarted();
        var task = Task.Run(() => RunFillAsync(fill, body, head, handle, committed));
        _fillTasks[task] = true;
        task.ContinueWith(t => _fillTasks.TryRemove(t, out _), TaskScheduler.Default);
        return true;
    }

    private async Task RunFillAsync(BlobFill fill, OriginBody origin, FillHead head, SafeFileHandle handle, Action<FillHead>? committed)
    {
        var outcome = FillOutcome.UpstreamError;
        var expected = head.Size;
        var mediaType = head.MediaType;
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        long offset = 0;
        long flushed = 0; // bytes whose writeback has started
        try
        {
            using var hash = fill.Digest.CreateHash();
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            var body = origin.Body;
            while (true)
            {
                stall.CancelAfter(s_stallTimeout);
                int read;
                try
                {
                    read = await body.ReadAsync(buffer, stall.Token);
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
                {
                    _logger.FillUpstreamFailed(fill.Digest.ToString(), offset, ex.Message);
                    outcome = FillOutcome.UpstreamError;
                    return;
                }

                if (read == 0)
                {
                    break;
                }

                if (expected is { } limit && offset + read > limit)
                {
                    outcome = FillOutcome.Truncated; // more bytes than announced: not the blob we asked for
                    return;
                }

                try
                {
                    RandomAccess.Write(handle, buffer.AsSpan(0, read), offset);
                }
                catch (IOException ex)
                {
                    ReportStorageFailure(fill.Digest.ToString(), ex.Message);
                    outcome = FillOutcome.StorageError;
                    return;
                }

                hash.AppendData(buffer, 0, read);
                offset += read;
                _metrics.UpstreamBytes(read);
                fill.Advance(read);
                if (offset - flushed >= Writeback.Stride)
                {
                    Writeback.Start(handle, flushed, offset - flushed);
                    flushed = offset;
                }
            }

            if (expected is { } size && offset != size)
            {
                _logger.FillTruncated(fill.Digest.ToString(), offset, size);
                outcome = FillOutcome.Truncated;
                return;
            }

            if (!fill.Digest.Matches(hash.GetHashAndReset()))
            {
                _logger.FillDigestMismatch(fill.Digest.ToString(), offset);
                outcome = FillOutcome.DigestMismatch;
                return;
            }

            try
            {
                RandomAccess.FlushToDisk(handle);
                handle.Dispose();
                CommitFile(fill.TempPath, fill.Digest, offset, mediaType);
            }
            catch (Exception ex) when (IsStorageFailure(ex))
            {
                ReportStorageFailure(fill.Digest.ToString(), ex.Message);
                outcome = FillOutcome.StorageError;
                return;
            }

            outcome = FillOutcome.Committed;
            RunHook(committed, head, fill.Digest);
            RaiseCommitted(fill.Digest);
            if (_storageFailure?.At != DateTimeOffset.MaxValue)
            {
                _storageFailure = null;
            }
            _logger.FillCommitted(fill.Digest.ToString(), offset);
        }
        finally
        {
            try
            {
                ArrayPool<byte>.Shared.Return(buffer);
                handle.Dispose();
                origin.Dispose();
                if (outcome != FillOutcome.Committed)
                {
                    TryDelete(fill.TempPath);
                }
                else
                {
                    EnsureCapacitySafely(); // before readers see the end, so the cap holds when a pull completes
                }
            }
            finally
            {
                Finish(fill, outcome); // always: readers wait on it, and eviction skips a digest in the map
            }
        }
    }

    /// <summary>Stores a small verified body (a manifest) directly. Returns false when storage failed.</summary>
    public bool StoreSmall(Digest digest, ReadOnlySpan<byte> bytes, string mediaType)
    {
        if (_blobs.FindBlob(digest.ToString()) is { } existing && File.Exists(_store.PathOf(digest)))
        {
            if (existing.MediaType != mediaType && mediaType.Length > 0)
            {
                AddToIndex(digest, existing.Size, mediaType);
            }

            return true;
        }

        var temp = _store.NewTempPath(digest);
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write))
            {
                RandomAccess.Write(handle, bytes, 0);
                RandomAccess.FlushToDisk(handle);
            }

            CommitFile(temp, digest, bytes.Length, mediaType);
        }
        catch (Exception ex) when (IsStorageFailure(ex))
        {
            ReportStorageFailure(digest.ToString(), ex.Message);
            TryDelete(temp);
            return false;
        }

        RaiseCommitted(digest);
        EnsureCapacitySafely();
        return true;
    }

    private void RaiseCommitted(Digest digest)
    {
        if (Committed is not { } committed || _blobs.FindBlob(digest.ToString()) is not { } record)
        {
            return;
        }

        var blob = new CachedBlob(digest, record, _store.PathOf(digest));
        foreach (var subscriber in committed.GetInvocationList().Cast<Action<CachedBlob>>())
        {
            RunHook(_ => subscriber(blob), null, digest);
        }
    }

    /// <summary>
    /// Moves a verified temp file into place and indexes it, as one step: when the index cannot take the entry,
    /// the file goes too, so no blob is ever committed but unindexed.
    /// </summary>
    private void CommitFile(string tempPath, Digest digest, long size, string mediaType)
    {
        _store.Commit(tempPath, digest);
        try
        {
            AddToIndex(digest, size, mediaType);
        }
        catch
        {
            _store.Delete(digest);
            throw;
        }
    }

    /// <summary>A caller's hook after a commit: whatever it throws is logged, never the fill's failure.</summary>
    private void RunHook(Action<FillHead>? hook, FillHead? head, Digest digest)
    {
        try
        {
            hook?.Invoke(head!);
        }
        catch (Exception ex)
        {
            _logger.CommitHookFailed(digest.ToString(), ex.Message);
        }
    }

    /// <summary>
    /// What the disk or the index engine throws when storage, not the code, failed. A LiteDB engine that closed
    /// itself (after an I/O error) answers queries with <see cref="ObjectDisposedException"/> from its own locks.
    /// </summary>
    private static bool IsStorageFailure(Exception ex) =>
        ex is IOException or UnauthorizedAccessException or LiteDB.LiteException or ObjectDisposedException;

    /// <summary><see cref="EnsureCapacity"/> where a failure must not stop the caller (a fill ending): logged, and the breaker trips.</summary>
    private void EnsureCapacitySafely()
    {
        try
        {
            EnsureCapacity();
        }
        catch (Exception ex) when (IsStorageFailure(ex))
        {
            _logger.IndexWriteFailed(ex.Message);
            MarkStorageFailed(ex.Message);
        }
    }

    private BlobRecord AddToIndex(Digest digest, long size, string mediaType)
    {
        var now = Now;
        lock (_sizeGate)
        {
            var previous = _blobs.FindBlob(digest.ToString());
            var record = new BlobRecord
            {
                Id = digest.ToString(),
                Size = size,
                MediaType = mediaType,
                FirstSeen = previous?.FirstSeen ?? now,
                LastAccess = now,
                Hits = previous?.Hits ?? 0,
            };
            _blobs.UpsertBlob(record);
            Interlocked.Add(ref _totalBytes, size - (previous?.Size ?? 0));
            return record;
        }
    }

    /// <summary>
    /// Drops a blob's index entry and its bytes from the total, once its file is gone. False when there is
    /// no entry, or the file is there (not deleted, or stored again meanwhile).
    /// </summary>
    private bool Forget(Digest digest)
    {
        lock (_sizeGate)
        {
            if (File.Exists(_store.PathOf(digest)) || _blobs.FindBlob(digest.ToString()) is not { } record)
            {
                return false;
            }

            _blobs.DeleteBlob(record.Id);
            Interlocked.Add(ref _totalBytes, -record.Size);
            return true;
        }
    }

    private void Finish(BlobFill fill, FillOutcome outcome)
    {
        _inFlight.TryRemove(new KeyValuePair<Digest, BlobFill>(fill.Digest, fill));
        _metrics.FillEnded(outcome); // counted before anyone waiting on the fill can look
        fill.Complete(outcome);
    }

    /// <summary>Evicts least recently used blobs until the cache is under 90% of its cap.</summary>
    public int EnsureCapacity()
    {
        if (TotalBytes <= _maxBytes)
        {
            return 0;
        }

        lock (_evictionGate)
        {
            _blobs.FlushAccess();
            var target = _maxBytes / 10 * 9;
            var evicted = 0;
            foreach (var record in _blobs.BlobsByLastAccess())
            {
                if (TotalBytes <= target)
                {
                    break;
                }

                if (!Digest.TryParse(record.Id, out var digest) || !Remove(digest))
                {
                    continue;
                }

                _metrics.Evicted(record.Size);
                evicted++;
            }

            _logger.Evicted(evicted, TotalBytes);
            return evicted;
        }
    }

    /// <summary>
    /// Deletes a committed blob: its file and its index entry, with its links and the tags that point to it
    /// (<see cref="BlobRecords.DeleteBlob"/>), so a blob fetched again earns its links again. The one deletion
    /// path, shared by eviction, prune and verify. False when it is gone already, being filled, or its file
    /// could not be deleted.
    /// </summary>
    public bool Remove(Digest digest)
    {
        lock (_evictionGate)
        {
            if (_inFlight.ContainsKey(digest) || _blobs.FindBlob(digest.ToString()) is null)
            {
                return false;
            }

            // Readers holding the file open keep reading: an unlinked file stays readable on Linux.
            _store.Delete(digest);
            if (!Forget(digest))
            {
                return false;
            }

            return true;
        }
    }

    /// <summary>Start-up repair: no temp files, no index entries without files, no files without entries.</summary>
    private void Reconcile()
    {
        // One pass over the index and one over the files (1M entries: a few seconds, no per-file lookups).
        var swept = _store.SweepTemp();
        var dropped = 0;
        var indexed = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        foreach (var record in _blobs.AllBlobs().ToList())
        {
            if (!Digest.TryParse(record.Id, out var digest))
            {
                _blobs.DeleteBlob(record.Id);
                dropped++;
                continue;
            }

            var file = new FileInfo(_store.PathOf(digest));
            if (!file.Exists || file.Length != record.Size)
            {
                _store.Delete(digest);
                _blobs.DeleteBlob(record.Id);
                dropped++;
                continue;
            }

            indexed.Add(record.Id);
            total += record.Size;
        }

        _totalBytes = total;

        int adopted = 0, removed = 0;
        foreach (var (digest, path) in _store.EnumerateBlobs())
        {
            if (indexed.Contains(digest.ToString()))
            {
                continue;
            }

            // A file without an entry: a crash between rename and index. Keep it only if it verifies.
            if (VerifyFile(digest, path, out var size, out var mediaType))
            {
                AddToIndex(digest, size, mediaType);
                adopted++;
            }
            else
            {
                TryDelete(path);
                removed++;
            }
        }

        _logger.Reconciled(swept, dropped, adopted, removed, indexed.Count + adopted, _totalBytes);
    }

    /// <summary>Re-hashes a stored file; also sniffs a manifest's media type from its JSON.</summary>
    public static bool VerifyFile(Digest digest, string path, out long size, out string mediaType)
    {
        size = 0;
        mediaType = "application/octet-stream";
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, StreamCopier.BufferSize, FileOptions.SequentialScan);
            using var hash = digest.CreateHash();
            var copy = StreamCopier.Copy(stream, new HashingSink(hash));
            size = copy.Bytes;
            if (copy.Failure != CopyFailure.None || !digest.Matches(hash.GetHashAndReset()))
            {
                return false;
            }

            if (size < 4 * 1024 * 1024)
            {
                mediaType = SniffManifestMediaType(File.ReadAllBytes(path)) ?? mediaType;
            }

            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static string? SniffManifestMediaType(byte[] bytes)
    {
        if (bytes.Length == 0 || bytes[0] != (byte)'{')
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(bytes);
            return document.RootElement.TryGetProperty("mediaType", out var type) && type.ValueKind == JsonValueKind.String
                ? type.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Problems that make the proxy not ready, and degradations it serves through (pass-through
    /// while the disk is full or read-only). Both empty when all is well.
    /// </summary>
    public (IReadOnlyList<string> Problems, IReadOnlyList<string> Degraded) Readiness()
    {
        var problems = new List<string>();
        var degraded = new List<string>();
        try
        {
            var probe = Path.Combine(_store.TempRoot, $".ready.{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, [1]);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            degraded.Add($"cache storage not writable, serving pass-through: {ex.Message}");
        }

        if (_storageFailure is { } failure && IsStorageDegraded)
        {
            degraded.Add(failure.At == DateTimeOffset.MaxValue
                ? $"cache unavailable since start-up, serving pass-through: {failure.Message}"
                : $"cache storage failed at {failure.At:O}, serving pass-through: {failure.Message}");
        }

        try
        {
            _index.Probe();
        }
        catch (Exception ex) when (ex is LiteDB.LiteException or IOException or ObjectDisposedException)
        {
            problems.Add($"index not available: {ex.Message}");
        }

        return (problems, degraded);
    }

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

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Shutdown: fills still running are cancelled and discarded (never indexed half-done); wait
        // for them briefly so none touches the index after it is closed.
        _stopping.Cancel();
        Task.WaitAll(_fillTasks.Keys.ToArray(), TimeSpan.FromSeconds(5));
        _flushTimer.Dispose();
        _stopping.Dispose();
    }
}
