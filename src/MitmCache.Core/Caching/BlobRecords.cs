using System.Collections.Concurrent;
using LiteDB;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// The blobs the cache holds (collection <c>blobs</c>): size, media type, first seen, last access, hits. A hit
/// never writes the index: last-access times are kept in memory and written in batches
/// (<see cref="FlushAccess"/>, and when the index closes). A blob's record owns its links and the tags that
/// point to it: deleting it deletes them, so a blob fetched again earns its links again.
/// </summary>
internal sealed class BlobRecords
{
    // What every hit looks up, kept in memory; see IndexFront.
    private const int FrontCapacity = 10_000;

    private readonly IndexCollection<BlobRecord> _blobs;
    private readonly LinkRecords _links;
    private readonly TagRecords _tags;
    private readonly IndexFront<BlobRecord> _front = new(FrontCapacity);
    private readonly ConcurrentDictionary<string, (DateTime At, long Hits)> _pendingAccess = new();

    // Entry counts for /metrics: counted once, then kept in step by every blob write under this lock, so a
    // scrape costs nothing however large the index (counting 1M records took 3.6 s a scrape).
    private readonly Lock _countGate = new();
    private BlobCounts? _counts;

    public BlobRecords(IndexDatabase database, LinkRecords links, TagRecords tags)
    {
        _links = links;
        _tags = tags;
        _blobs = database.Collection<BlobRecord>(IndexSchema.Blobs, blobs =>
        {
            blobs.EnsureIndex(b => b.LastAccess);
            lock (_countGate)
            {
                _counts = null; // the file was reopened: a write that failed with the engine may have landed or not
            }
        });
        database.BeforeClose(opened => FlushAccess(_blobs.On(opened)));
    }

    public BlobRecord? FindBlob(Digest digest)
    {
        var id = digest.ToString();
        return _blobs.Use(c => _front.Find(id, () => c.FindById(id)))?.Copy();
    }

    /// <summary>Whether the index holds the blob, asked of the file (a sweep must not churn what hits keep in memory).</summary>
    public bool Contains(Digest digest) => _blobs.Use(c => c.Exists(Query.EQ("_id", digest.ToString())));

    public List<BlobRecord> AllBlobs() => _blobs.Use(c => c.FindAll().ToList());

    public long TotalBlobBytes() => _blobs.Use(c => c.FindAll().Sum(b => b.Size));

    /// <summary>Blob records held, and how many are manifests; a full count only the first time.</summary>
    public BlobCounts CountBlobs() => _blobs.Use(c =>
    {
        lock (_countGate)
        {
            return _counts ??= c.FindAll().Aggregate(default(BlobCounts), (counts, record) => counts.With(record));
        }
    });

    public void UpsertBlob(BlobRecord record)
    {
        var kept = record.Copy();
        _blobs.Use(c =>
        {
            lock (_countGate)
            {
                var previous = _counts is null ? null : c.FindById(kept.Id);
                _front.Write(kept.Id, kept, () => c.Upsert(kept));
                _counts = _counts?.Without(previous).With(kept);
            }

            return 0;
        });
    }

    /// <summary>Deletes the blob's record, then its links and the tags that point to it.</summary>
    /// <remarks>
    /// In that order: if storage fails half-way, what is left is a link or a tag to nothing, which serves nothing
    /// (a hit needs the blob) and which <see cref="IndexMaintenance"/> sweeps away. Deleting never makes a link.
    /// </remarks>
    public void DeleteBlob(Digest digest)
    {
        DeleteRecord(digest.ToString());
        _links.DeleteLinksOf(digest);
        _tags.DeleteTagsPointingTo(digest);
    }

    /// <summary>Deletes a record whose id is not a digest (written by hand or by an old version): nothing can link to it.</summary>
    public void DeleteUnparsable(BlobRecord record) => DeleteRecord(record.Id);

    private void DeleteRecord(string id)
    {
        _blobs.Use(c =>
        {
            lock (_countGate)
            {
                var previous = _counts is null ? null : c.FindById(id);
                _front.Write(id, null, () => c.Delete(id));
                _counts = _counts?.Without(previous);
            }

            return 0;
        });
        _pendingAccess.TryRemove(id, out _);
    }

    /// <summary>Notes a hit in memory; <see cref="FlushAccess()"/> writes it.</summary>
    public void TouchBlob(Digest digest, DateTime at) =>
        _pendingAccess.AddOrUpdate(digest.ToString(), (at, 1), (_, old) => (at, old.Hits + 1));

    public int FlushAccess() => _blobs.Use(FlushAccess);

    private int FlushAccess(ILiteCollection<BlobRecord> blobs)
    {
        var written = 0;
        foreach (var digest in _pendingAccess.Keys)
        {
            if (!_pendingAccess.TryRemove(digest, out var access))
            {
                continue;
            }

            var record = blobs.FindById(digest);
            if (record is null)
            {
                continue;
            }

            record.LastAccess = access.At > record.LastAccess ? access.At : record.LastAccess;
            record.Hits += access.Hits;
            _front.Write(digest, record.Copy(), () => blobs.Update(record));
            written++;
        }

        return written;
    }

    /// <summary>Least recently used first; call <see cref="FlushAccess()"/> before for exact order.</summary>
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
            var page = _blobs.Use(c => c.Query().Where(b => b.LastAccess >= from).OrderBy(b => b.LastAccess).Limit(pageSize + skip).ToList());
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
}
