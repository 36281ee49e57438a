using System.Diagnostics;
using System.Security.Cryptography;
using Amazon.Runtime;
using Microsoft.Extensions.Logging.Abstractions;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 9. The S3 blob tier on a real Ceph RGW (mon + memstore OSD + radosgw on loopback): the engine's start time over
/// several starts (and how many failed), a 256 MiB blob uploaded and read back verified against the same work on
/// the local disk (hash + copy to a file, hash + read), and what a dead or hung engine costs a caller: the first
/// call, then each call while the breaker is open.
/// </summary>
internal static class BlobStoreScenario
{
    private const string Label = "9 blob store";
    private const string Bucket = "bench";

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        await MeasureStartsAsync(world.Options.Quick ? 3 : 10, table);

        await using var engine = await CephRgw.StartAsync([Bucket]);
        var settings = BlobStoreSettings.Parse($"s3://{Bucket}/bench", engine.Endpoint.ToString(), null, new List<string>())!;
        using var metrics = new BlobStoreMetrics();
        using var tier = new S3BlobTier(settings, new BasicAWSCredentials(engine.AccessKey, engine.SecretKey), metrics, TimeProvider.System, NullLogger<S3BlobTier>.Instance);
        var size = world.Options.Quick ? 64L << 20 : 256L << 20;
        var path = world.Dir.Combine("blob-store-source");
        var digest = WriteBlob(path, size);

        List<double> upload = [], localWrite = [], sdkPut = [], download = [], localRead = [], sdkGet = [];
        using var client = engine.CreateClient();
        var key = tier.Layout.BlobKey(digest);
        for (var rep = 0; rep < world.Options.Repetitions; rep++)
        {
            await tier.DeleteAsync(digest, default);
            upload.Add(await TimeAsync(async () => Expect(UploadOutcome.Uploaded, await tier.UploadAsync(digest, path, "application/octet-stream", default))));
            localWrite.Add(await TimeAsync(() => HashAndCopyAsync(path, world.Dir.Combine("blob-store-copy"))));
            sdkPut.Add(await TimeAsync(() => client.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = Bucket, Key = key + ".sdk", FilePath = path })));
            download.Add(await TimeAsync(async () => Expect(TierOutcome.Found, await tier.CopyVerifiedAsync(digest, Stream.Null, default))));
            localRead.Add(await TimeAsync(() => HashAndCopyAsync(path, null)));
            sdkGet.Add(await TimeAsync(async () =>
            {
                using var response = await client.GetObjectAsync(Bucket, key);
                await response.ResponseStream.CopyToAsync(Stream.Null);
            }));
        }

        var mib = size / (double)(1 << 20);
        AddThroughput(table, $"upload {mib:0} MiB (hash + PUT, multipart), MiB/s", mib / Stats.Median(upload), mib / Stats.Median(localWrite), "local: hash + copy to a file + fsync");
        AddThroughput(table, $"upload {mib:0} MiB, MiB/s, against the SDK alone", mib / Stats.Median(upload), mib / Stats.Median(sdkPut), "one PutObject from the file, no hash");
        AddThroughput(table, $"read {mib:0} MiB verified (GET + hash), MiB/s", mib / Stats.Median(download), mib / Stats.Median(localRead), "local: hash + read the file");
        AddThroughput(table, $"read {mib:0} MiB verified, MiB/s, against the SDK alone", mib / Stats.Median(download), mib / Stats.Median(sdkGet), "one GetObject, no hash");

        // A dead engine (connection refused) and a hung one (SIGSTOP: accepted, never answered).
        var fast = settings with { BreakerOpen = TimeSpan.FromMinutes(5) };
        engine.KillGateway();
        await MeasureFailFastAsync(table, "engine dead (refused)", fast, engine, digest);
        await engine.StartGatewayAsync();
        await engine.FreezeGatewayAsync();
        await MeasureFailFastAsync(table, $"engine hung ({fast.RequestTimeout.TotalSeconds:0} s timeout)", fast, engine, digest);
        await engine.ThawGatewayAsync();
    }

    private static async Task MeasureStartsAsync(int count, ResultTable table)
    {
        List<double> starts = [];
        var failures = new List<string>();
        for (var i = 0; i < count; i++)
        {
            try
            {
                await using var engine = await CephRgw.StartAsync();
                starts.Add(engine.StartTime.TotalSeconds);
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
            {
                failures.Add(ex.Message.Split('\n')[0]);
            }
        }

        table.Add(new ResultRow(Label, $"Ceph RGW start to first signed request, s (median of {starts.Count}; min–max)",
            starts.Count == 0 ? "—" : $"{Stats.Median(starts):0.00} ({starts.Min():0.00}–{starts.Max():0.00})", "—", "—", "≤ 5 s", starts.Count > 0 && Stats.Median(starts) <= 5 ? "holds" : "MISS"));
        table.Add(new ResultRow(Label, "Ceph RGW starts that failed", $"{failures.Count} of {count}", "—", "—", "0", failures.Count == 0 ? "holds" : "MISS"));
        foreach (var failure in failures)
        {
            table.Note($"engine start failed: {failure}");
        }
    }

    private static async Task MeasureFailFastAsync(ResultTable table, string what, BlobStoreSettings settings, CephRgw engine, Digest digest)
    {
        using var metrics = new BlobStoreMetrics();
        using var tier = new S3BlobTier(settings, new BasicAWSCredentials(engine.AccessKey, engine.SecretKey), metrics, TimeProvider.System, NullLogger<S3BlobTier>.Instance);
        var first = await TimeAsync(async () => Expect(TierOutcome.Unavailable, (await tier.HeadAsync(digest, default)).Outcome));
        const int Calls = 10_000;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Calls; i++)
        {
            await using var read = await tier.OpenReadAsync(digest, 0, default);
            Expect(TierOutcome.Unavailable, read.Outcome);
        }

        var open = clock.Elapsed.TotalMilliseconds * 1000 / Calls;
        table.Add(new ResultRow(Label, $"{what}: first call, ms / each call while open, µs", $"{first * 1000:0.0} / {open:0.00}", "—", "—",
            $"first ≤ {settings.RequestTimeout.TotalMilliseconds * 1.5:0} ms", first <= settings.RequestTimeout.TotalSeconds * 1.5 ? "holds" : "MISS"));
    }

    private static void AddThroughput(ResultTable table, string metric, double tier, double local, string baseline) =>
        table.Add(new ResultRow(Label, metric, $"{tier:0}", $"{local:0} ({baseline})", $"{ResultTable.F(tier / local)}×", "—", "—"));

    private static async Task HashAndCopyAsync(string path, string? destination)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var source = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var target = destination is null ? Stream.Null : new FileStream(destination, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        var buffer = new byte[1 << 16];
        int read;
        while ((read = await source.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            await target.WriteAsync(buffer.AsMemory(0, read));
        }

        if (target is FileStream file)
        {
            file.Flush(flushToDisk: true);
        }
    }

    private static Digest WriteBlob(string path, long size)
    {
        var random = new Random(9);
        var buffer = new byte[1 << 20];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var file = File.Create(path))
        {
            for (long written = 0; written < size; written += buffer.Length)
            {
                random.NextBytes(buffer);
                file.Write(buffer);
                hash.AppendData(buffer);
            }
        }

        return Digest.TryParse($"sha256:{Convert.ToHexStringLower(hash.GetHashAndReset())}", out var digest) ? digest : throw new InvalidOperationException();
    }

    private static async Task<double> TimeAsync(Func<Task> action)
    {
        var clock = Stopwatch.StartNew();
        await action();
        return clock.Elapsed.TotalSeconds;
    }

    private static void Expect<T>(T expected, T actual)
    {
        if (!EqualityComparer<T>.Default.Equals(expected, actual))
        {
            throw new InvalidOperationException($"expected {expected}, got {actual}");
        }
    }
}
