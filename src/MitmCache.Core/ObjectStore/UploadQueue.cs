using LiteDB;
using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.ObjectStore;

/// <summary>What <see cref="UploadQueue.TryEnqueue"/> did.</summary>
internal enum EnqueueResult
{
    Queued,
    AlreadyQueued,

    /// <summary>The queue holds its capacity: the blob stays local only (counted, logged).</summary>
    Full,

    /// <summary>The index could not be written (a full disk): the blob stays local only.</summary>
    NotStored,
}

/// <summary>
/// The uploads still to do, bounded and persisted in the index (collection <c>blob_uploads</c>, owned here): one
/// record per digest (a blob committed twice is uploaded once), oldest due first. Index failures do not throw out
/// of here: an upload that cannot be recorded is reported, and the blob stays local only, as if the tier were off.
/// </summary>
internal sealed class UploadQueue
{
    private readonly IndexCollection<UploadRecord> _uploads;
    private readonly int _capacity;
    private readonly Lock _gate = new(); // the count and the insert as one step, so the bound holds
    private long _count = -1;

    public UploadQueue(IndexDatabase index, int capacity)
    {
        _uploads = index.Collection<UploadRecord>(IndexSchema.Uploads, uploads => uploads.EnsureIndex(u => u.NextAttemptAt));
        _capacity = capacity;
        try
        {
            _count = _uploads.Use(c => c.Count());
        }
        catch (Exception ex) when (IndexDatabase.IsStorageFailure(ex))
        {
            // Counted again at the next successful write.
        }
    }

    /// <summary>Uploads waiting, as of the last successful index operation (for the gauge; never blocks on the index).</summary>
    public long Count => Math.Max(0, Interlocked.Read(ref _count));

    public EnqueueResult TryEnqueue(Digest digest, string mediaType, DateTime now)
    {
        var id = digest.ToString();
        try
        {
            lock (_gate)
            {
                return _uploads.Use(c =>
                {
                    if (c.FindById(id) is not null)
                    {
                        return EnqueueResult.AlreadyQueued;
                    }

                    var count = c.Count();
                    if (count >= _capacity)
                    {
                        Interlocked.Exchange(ref _count, count);
                        return EnqueueResult.Full;
                    }

                    c.Insert(new UploadRecord { Id = id, MediaType = mediaType, EnqueuedAt = now, NextAttemptAt = now });
                    Interlocked.Exchange(ref _count, count + 1);
                    return EnqueueResult.Queued;
                });
            }
        }
        catch (Exception ex) when (IndexDatabase.IsStorageFailure(ex))
        {
            return EnqueueResult.NotStored;
        }
    }

    /// <summary>Up to <paramref name="max"/> records due at <paramref name="now"/>, longest due first.</summary>
    public List<UploadRecord> Due(DateTime now, int max) =>
        _uploads.Use(c => c.Query().Where(u => u.NextAttemptAt <= now).OrderBy(u => u.NextAttemptAt).Limit(max).ToList());

    /// <summary>When the next record falls due; null when the queue is empty.</summary>
    public DateTime? NextDue() =>
        _uploads.Use(c => c.Query().OrderBy(u => u.NextAttemptAt).Limit(1).ToList()).FirstOrDefault()?.NextAttemptAt;

    public void Remove(string id) => Update(c => c.Delete(id));

    /// <summary>One more failed attempt on this object: try it again at <paramref name="next"/>.</summary>
    public void Postpone(UploadRecord record, DateTime next)
    {
        record.Attempts++;
        record.NextAttemptAt = next;
        Update(c => c.Update(record));
    }

    private void Update(Func<ILiteCollection<UploadRecord>, bool> write) =>
        _uploads.Use(c =>
        {
            write(c);
            Interlocked.Exchange(ref _count, c.Count());
            return true;
        });
}
