using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// Verified bytes into the cache: a fill's temp file or a small body (a manifest) moved into place and indexed as
/// one step (<see cref="CacheSize.Commit"/>), then the work that follows a commit (the fill's own hook, the
/// <see cref="Committed"/> event), then the size cap. A storage failure trips the breaker; a hook's failure is only logged.
/// </summary>
internal sealed class BlobCommits(BlobStore store, BlobRecords blobs, CacheSize cacheSize, StorageHealth health, ILogger logger)
{
    /// <summary>
    /// Raised once a blob is committed and indexed: after a fill commits (before the fill ends; its readers may have sent the end once the bytes were verified), and after
    /// <see cref="StoreSmall"/> stores a manifest it did not have. For work that follows a commit (an upload to a
    /// shared bucket): keep it short, hand slow work off. A subscriber that throws is logged, never the fill's failure.
    /// </summary>
    public event Action<CachedBlob>? Committed;

    /// <summary>A fill's verified temp file into place and into the index, then the hooks, then the size cap.</summary>
    public FillOutcome CommitFill(BlobFill fill, long size, FillHead head, Action<FillHead>? committed)
    {
        try
        {
            cacheSize.Commit(fill.TempPath, fill.Digest, size, head.MediaType);
        }
        catch (Exception ex) when (StorageHealth.IsStorageFailure(ex))
        {
            health.Report(fill.Digest, ex.Message);
            return FillOutcome.StorageError;
        }

        RunHook(() => committed?.Invoke(head), fill.Digest);
        RaiseCommitted(fill.Digest);
        health.Recovered();
        logger.FillCommitted(fill.Digest.ToString(), size);
        EnsureCapacitySafely(); // before the fill ends, so the cap holds once the fill is done
        return FillOutcome.Committed;
    }

    /// <summary>Stores a small verified body (a manifest) directly. Returns false when storage failed.</summary>
    public bool StoreSmall(Digest digest, ReadOnlySpan<byte> bytes, string mediaType)
    {
        if (blobs.FindBlob(digest) is { } existing && File.Exists(store.PathOf(digest)))
        {
            if (existing.MediaType != mediaType && mediaType.Length > 0)
            {
                cacheSize.Add(digest, existing.Size, mediaType);
            }

            return true;
        }

        var temp = store.NewTempPath(digest);
        try
        {
            using (var handle = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write))
            {
                RandomAccess.Write(handle, bytes, 0);
                RandomAccess.FlushToDisk(handle);
            }

            cacheSize.Commit(temp, digest, bytes.Length, mediaType);
        }
        catch (Exception ex) when (StorageHealth.IsStorageFailure(ex))
        {
            health.Report(digest, ex.Message);
            FillPump.TryDelete(temp);
            return false;
        }

        RaiseCommitted(digest);
        EnsureCapacitySafely();
        return true;
    }

    private void RaiseCommitted(Digest digest)
    {
        if (Committed is not { } committed)
        {
            return;
        }

        CachedBlob? blob = null;
        RunHook(() => blob = blobs.FindBlob(digest) is { } record ? new CachedBlob(digest, record, store.PathOf(digest)) : null, digest);
        foreach (var subscriber in committed.GetInvocationList().Cast<Action<CachedBlob>>())
        {
            if (blob is not null)
            {
                RunHook(() => subscriber(blob), digest);
            }
        }
    }

    /// <summary>Work that follows a commit: whatever it throws is logged, never the fill's failure.</summary>
    private void RunHook(Action hook, Digest digest)
    {
        try
        {
            hook();
        }
        catch (Exception ex)
        {
            logger.CommitHookFailed(digest.ToString(), ex.Message);
        }
    }

    /// <summary><see cref="CacheSize.EnsureCapacity"/> where a failure must not stop the caller (a fill ending): logged, and the breaker trips.</summary>
    private void EnsureCapacitySafely()
    {
        try
        {
            cacheSize.EnsureCapacity();
        }
        catch (Exception ex) when (StorageHealth.IsStorageFailure(ex))
        {
            logger.IndexWriteFailed(ex.Message);
            health.Failed(ex.Message);
        }
    }
}
