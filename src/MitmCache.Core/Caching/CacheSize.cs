using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// The cache's size and what keeps it under the cap: every blob's bytes are counted as its index entry is written or
/// dropped (as one step), and when the total passes the cap, least recently used blobs are evicted down to 90% of it.
/// Deletion goes through <see cref="Remove"/>, the one path shared by eviction, prune and verify.
/// </summary>
internal sealed class CacheSize(BlobStore store, BlobRecords blobs, long maxBytes, Func<Digest, bool> isFilling, TimeProvider time,
    CacheMetrics metrics, ILogger logger)
{
    private readonly Lock _evictionGate = new();
    private readonly Lock _sizeGate = new(); // a record's write and its change to _totalBytes, as one step
    private long _totalBytes;

    public long TotalBytes => Interlocked.Read(ref _totalBytes);

    /// <summary>Start-up repair counted what is there.</summary>
    public void Reset(long total) => Interlocked.Exchange(ref _totalBytes, total);

    /// <summary>Indexes a blob whose file is in place (new, or stored again), counting its bytes once.</summary>
    public void Add(Digest digest, long size, string mediaType)
    {
        var now = time.GetUtcNow().UtcDateTime;
        lock (_sizeGate)
        {
            var previous = blobs.FindBlob(digest);
            blobs.UpsertBlob(new BlobRecord
            {
                Id = digest.ToString(),
                Size = size,
                MediaType = mediaType,
                FirstSeen = previous?.FirstSeen ?? now,
                LastAccess = now,
                Hits = previous?.Hits ?? 0,
            });
            Interlocked.Add(ref _totalBytes, size - (previous?.Size ?? 0));
        }
    }

    /// <summary>
    /// Moves a verified temp file into place and indexes it, as one step: when the index cannot take the entry,
    /// the file goes too, so no blob is ever committed but unindexed.
    /// </summary>
    public void Commit(string tempPath, Digest digest, long size, string mediaType)
    {
        store.Commit(tempPath, digest);
        try
        {
            Add(digest, size, mediaType);
        }
        catch
        {
            store.Delete(digest);
            throw;
        }
    }

    /// <summary>
    /// Drops a blob's index entry and its bytes from the total, once its file is gone. False when there is
    /// no entry, or the file is there (not deleted, or stored again meanwhile).
    /// </summary>
    public bool Forget(Digest digest)
    {
        lock (_sizeGate)
        {
            if (File.Exists(store.PathOf(digest)) || blobs.FindBlob(digest) is not { } record)
            {
                return false;
            }

            blobs.DeleteBlob(digest);
            Interlocked.Add(ref _totalBytes, -record.Size);
            return true;
        }
    }

    /// <summary>
    /// Deletes a committed blob: its file and its index entry, with its links and the tags that point to it
    /// (<see cref="BlobRecords.DeleteBlob"/>), so a blob fetched again earns its links again. False when it is gone
    /// already, being filled, or its file could not be deleted.
    /// </summary>
    public bool Remove(Digest digest)
    {
        lock (_evictionGate)
        {
            if (isFilling(digest) || blobs.FindBlob(digest) is null)
            {
                return false;
            }

            // Readers holding the file open keep reading: an unlinked file stays readable on Linux.
            store.Delete(digest);
            return Forget(digest);
        }
    }

    /// <summary>Evicts least recently used blobs until the cache is under 90% of its cap.</summary>
    public int EnsureCapacity()
    {
        if (TotalBytes <= maxBytes)
        {
            return 0;
        }

        lock (_evictionGate)
        {
            blobs.FlushAccess();
            var target = maxBytes / 10 * 9;
            var evicted = 0;
            foreach (var record in blobs.BlobsByLastAccess())
            {
                if (TotalBytes <= target)
                {
                    break;
                }

                if (!Digest.TryParse(record.Id, out var digest) || !Remove(digest))
                {
                    continue;
                }

                metrics.Evicted(record.Size);
                evicted++;
            }

            logger.Evicted(evicted, TotalBytes);
            return evicted;
        }
    }
}
