using System.Diagnostics;
using LiteDB;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Caching;
using MitmCache.Registry;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 7. The LiteDB index at 1M blob records, through the real <see cref="IndexDatabase"/> and <see cref="BlobRecords"/>: the
/// insert rate of the product path (one <see cref="BlobRecords.UpsertBlob"/> per committed blob), lookups
/// (<see cref="BlobRecords.FindBlob"/>, p50/p99 of single calls), the time to open the index and to scan
/// it whole, what a <c>/metrics</c> scrape and a <c>/readyz</c> probe ask of it, the heap and time of
/// the least-recently-used walk that eviction and prune make, and the file size.
/// </summary>
/// <remarks>
/// Only the first records go in one upsert at a time (that is the rate a proxy sees); the rest are bulk
/// loaded with LiteDB's InsertBulk into the same collection, or 1M single upserts alone would take minutes.
/// </remarks>
internal static class IndexScaleScenario
{
    public static Task RunAsync(BenchWorld world, ResultTable table)
    {
        var total = world.Options.Quick ? 100_000 : 1_000_000;
        var single = world.Options.Quick ? 10_000 : 20_000;
        var dir = world.Dir.Combine("index");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "index.db");
        var now = DateTime.UtcNow;
        var digests = new Digest[total];
        for (var i = 0; i < total; i++)
        {
            digests[i] = Digest.Compute(BitConverter.GetBytes(i));
        }

        BlobRecord Record(int i) => new()
        {
            Id = digests[i].ToString(),
            Size = 1_000_000 + i,
            MediaType = "application/vnd.oci.image.layer.v1.tar+gzip",
            FirstSeen = now,
            LastAccess = now.AddSeconds(-i),
        };

        double insertRate;
        using (var database = new IndexDatabase(path))
        {
            var index = Blobs(database);
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < single; i++)
            {
                index.UpsertBlob(Record(i));
            }

            insertRate = single / clock.Elapsed.TotalSeconds;
        }

        var bulkClock = Stopwatch.StartNew();
        using (var raw = new LiteDatabase(new ConnectionString { Filename = path, Connection = ConnectionType.Direct }))
        {
            raw.GetCollection<BlobRecord>("blobs").InsertBulk(Enumerable.Range(single, total - single).Select(Record), batchSize: 20_000);
            raw.Checkpoint();
        }

        var bulkRate = (total - single) / bulkClock.Elapsed.TotalSeconds;

        var openClock = Stopwatch.StartNew();
        var openedDatabase = new IndexDatabase(path);
        var opened = Blobs(openedDatabase);
        var openMs = openClock.Elapsed.TotalMilliseconds;

        var scanClock = Stopwatch.StartNew();
        var scanned = opened.AllBlobs().Count();
        var bytes = opened.TotalBlobBytes();
        var count = opened.CountBlobs().Total; // the first call counts
        var scanMs = scanClock.Elapsed.TotalMilliseconds;
        if (scanned != total || count != total || bytes <= 0)
        {
            throw new InvalidOperationException($"index holds {scanned}/{count} records, expected {total}");
        }

        var random = new Random(42);
        for (var i = 0; i < 2000; i++)
        {
            _ = opened.FindBlob(digests[random.Next(total)]);
        }

        var lookups = world.Options.Quick ? 20_000 : 100_000;
        var times = new double[lookups];
        for (var i = 0; i < lookups; i++)
        {
            var digest = digests[random.Next(total)];
            var start = Stopwatch.GetTimestamp();
            var found = opened.FindBlob(digest);
            times[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            if (found is null)
            {
                throw new InvalidOperationException($"lookup of {digest} found nothing");
            }
        }

        // What every /metrics scrape and /readyz probe asks of the index.
        var scrapeClock = Stopwatch.StartNew();
        var (entries, manifests) = opened.CountBlobs();
        var scrapeMs = scrapeClock.Elapsed.TotalMilliseconds;
        var probeClock = Stopwatch.StartNew();
        openedDatabase.Probe();
        var probeMs = probeClock.Elapsed.TotalMilliseconds;
        if (entries != total || manifests != 0)
        {
            throw new InvalidOperationException($"counted {entries} entries and {manifests} manifests, expected {total} and 0");
        }

        // Eviction and prune walk the least-recently-used order: managed heap at the walk's end, read a
        // page at a time (what they do) against the whole order held at once (what they did).
        var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
        var walked = 0;
        long heapPaged = 0;
        var walkClock = Stopwatch.StartNew();
        foreach (var _ in opened.BlobsByLastAccess())
        {
            if (++walked == total)
            {
                heapPaged = GC.GetTotalMemory(forceFullCollection: true) - heapBefore;
            }
        }

        var pagedSeconds = walkClock.Elapsed.TotalSeconds;
        walkClock.Restart();
        var whole = opened.BlobsByLastAccess(pageSize: int.MaxValue - 1).ToList();
        var wholeSeconds = walkClock.Elapsed.TotalSeconds;
        var heapWhole = GC.GetTotalMemory(forceFullCollection: true) - heapBefore;
        GC.KeepAlive(whole);

        openedDatabase.Dispose();
        Array.Sort(times);
        var fileBytes = Directory.GetFiles(dir).Sum(f => new FileInfo(f).Length);
        var label = $"7 index {total / 1000}k blobs";
        table.Add(new ResultRow(label, "FindBlob p50 / p99", $"{times[lookups / 2]:0} µs / {Stats.Quantile(times, 0.99):0} µs", "—", "—", "—", "—"));
        table.Add(new ResultRow(label, "insert rate: single UpsertBlob (product path) / InsertBulk", $"{insertRate:0}/s / {bulkRate:0}/s", "—", "—", "—", "—"));
        table.Add(new ResultRow(label, "open IndexDatabase / full scans (AllBlobs, TotalBlobBytes, first CountBlobs)", $"{openMs:0} ms / {scanMs:0} ms", "—", "—", "—", "—"));
        table.Add(new ResultRow(label, "index queries per /metrics scrape (entry counts) / per /readyz probe", $"{scrapeMs:0.0} ms / {probeMs:0.000} ms", "—", "—", "—", "—"));
        table.Add(new ResultRow(label, "walking the LRU order (eviction, prune): heap held and time, a page at a time / all at once", $"{heapPaged / 1e6:0.0} MB, {pagedSeconds:0.0} s / {heapWhole / 1e6:0} MB, {wholeSeconds:0.0} s", "—", "—", "—", "—"));
        table.Add(new ResultRow(label, "index file size", $"{fileBytes / 1e6:0} MB ({(double)fileBytes / total:0} B/record)", "—", "—", "—", "—"));
        Directory.Delete(dir, recursive: true);
        return Task.CompletedTask;
    }

    private static BlobRecords Blobs(IndexDatabase database) => new(database, new LinkRecords(database), new TagRecords(database));
}
