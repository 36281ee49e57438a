using System.Text;
using Amazon.Runtime;
using MitmCache.Caching;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// The background uploader against the real engine: down at start-up and back later, with the uploader (and its
/// index) restarted in between, nothing queued is lost; an object another instance uploaded is skipped; the keys
/// never reach a log line or the index file.
/// </summary>
[Collection(CephFailureCollection.Name)]
public sealed class BlobUploaderTests(CephEngineFixture fixture) : GatewayTests(fixture, "s3-uploader")
{
    [Fact]
    public async Task Uploader_EngineDownAtStartAndUploaderRestarted_UploadsEveryQueuedBlobOnceTheEngineIsBack()
    {
        using var harness = TierHarness.Create(Engine, s => s with { MultipartThreshold = 5 << 20, PartSize = 5 << 20 });
        var store = new BlobStore(new MitmCache.Configuration.DataLayout(Dir.Combine("data")));
        store.CreateDirectories();
        var blobs = new[] { 1_000L, 70_000, (6L << 20) + 1, 3 }
            .Select((size, i) => (Size: size, Digest: WriteCommitted(store, size, seed: 100 + i)))
            .ToList();
        var indexPath = Dir.Combine("data", "index.db");

        Engine.KillGateway();
        using (var index = new IndexDatabase(indexPath))
        {
            var queue = new UploadQueue(index, capacity: 100);
            await using var uploader = new BlobUploader(harness.Tier, queue, store, harness.BlobStoreMetrics, TimeProvider.System, harness.CreateLogger<BlobUploader>());
            uploader.Start();
            Assert.All(blobs, b => Assert.Equal(EnqueueResult.Queued, uploader.Enqueue(b.Digest, "application/octet-stream")));
            Assert.Equal(EnqueueResult.AlreadyQueued, uploader.Enqueue(blobs[0].Digest, "application/octet-stream"));

            Assert.True(await Poll.UntilAsync(() => harness.Tier.Breaker.State != BreakerState.Closed, TimeSpan.FromSeconds(10)), "the engine was never found down");
            Assert.Equal(4, harness.Metrics.Value("mitmcache_blob_store_upload_queue_length"));
        } // the uploader stops, then the index closes: a process restart, minus the process

        await Engine.StartGatewayAsync();
        using (var index = new IndexDatabase(indexPath))
        {
            var queue = new UploadQueue(index, capacity: 100);
            Assert.Equal(4, queue.Count);
            await using var uploader = new BlobUploader(harness.Tier, queue, store, harness.BlobStoreMetrics, TimeProvider.System, harness.CreateLogger<BlobUploader>());
            uploader.Start();

            Assert.True(await Poll.UntilAsync(() => queue.Count == 0, TimeSpan.FromSeconds(30)), $"still queued: {queue.Count}\n{harness.Log.Tail()}");
        }

        foreach (var (size, digest) in blobs)
        {
            var stored = await harness.ReadObjectDirectlyAsync(digest);
            Assert.NotNull(stored);
            Assert.Equal(digest, Digest.Compute(stored));
        }

        Assert.Equal(4, harness.Metrics.Value("mitmcache_blob_store_uploads_total", ("result", "uploaded")));
        Assert.Equal(blobs.Sum(b => b.Size), harness.Metrics.Value("mitmcache_blob_store_bytes_total", ("direction", "upload")));
        Assert.True(harness.Tier.IsHealthy);
    }

    [Fact]
    public async Task Uploader_ObjectAlreadyInTheBucket_SkipsIt_AndAFullQueueRefuses()
    {
        using var other = TierHarness.Create(Engine);
        using var harness = TierHarness.Create(Engine, s => s with { Prefix = other.Settings.Prefix, UploadQueueCapacity = 2 });
        var store = new BlobStore(new MitmCache.Configuration.DataLayout(Dir.Combine("data")));
        store.CreateDirectories();
        var present = WriteCommitted(store, 5_000, seed: 1);
        var missing = WriteCommitted(store, 6_000, seed: 2);
        Assert.Equal(UploadOutcome.Uploaded, await other.Tier.UploadAsync(present, store.PathOf(present), "application/octet-stream", default));

        using var index = new IndexDatabase(Dir.Combine("data", "index.db"));
        var queue = new UploadQueue(index, harness.Settings.UploadQueueCapacity);
        await using var uploader = new BlobUploader(harness.Tier, queue, store, harness.BlobStoreMetrics, TimeProvider.System, harness.CreateLogger<BlobUploader>());
        uploader.Enqueue(present, "application/octet-stream");
        uploader.Enqueue(missing, "application/octet-stream");
        Assert.Equal(EnqueueResult.Full, uploader.Enqueue(WriteCommitted(store, 7_000, seed: 3), "application/octet-stream"));
        uploader.Start();

        Assert.True(await Poll.UntilAsync(() => queue.Count == 0, TimeSpan.FromSeconds(30)), harness.Log.Tail());
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_uploads_total", ("result", "exists")));
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_uploads_total", ("result", "uploaded")));
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_uploads_total", ("result", "dropped")));
        Assert.Equal(6_000, harness.Metrics.Value("mitmcache_blob_store_bytes_total", ("direction", "upload")));
    }

    [Fact]
    public async Task Keys_NeverInALogLineOrTheIndexFile()
    {
        using var harness = TierHarness.Create(Engine);
        using var forged = TierHarness.Create(Engine, credentials: new BasicAWSCredentials(Engine.AccessKey, "wrong" + Engine.SecretKey[5..]));
        var store = new BlobStore(new MitmCache.Configuration.DataLayout(Dir.Combine("data")));
        store.CreateDirectories();
        var digest = WriteCommitted(store, 9_000, seed: 9);
        var indexPath = Dir.Combine("data", "index.db");
        using (var index = new IndexDatabase(indexPath))
        {
            var queue = new UploadQueue(index, 10);
            // Refused keys (403), a dead engine, and a good upload: every path that logs.
            Assert.Equal(UploadOutcome.Unavailable, await forged.Tier.UploadAsync(digest, store.PathOf(digest), "application/octet-stream", default));
            Assert.Contains("access_denied", forged.Tier.DegradedReason, StringComparison.Ordinal);
            Engine.KillGateway();
            Assert.Equal(TierOutcome.Unavailable, (await harness.Tier.HeadAsync(digest, default)).Outcome);
            await Engine.StartGatewayAsync();
            await using var uploader = new BlobUploader(harness.Tier, queue, store, harness.BlobStoreMetrics, TimeProvider.System, harness.CreateLogger<BlobUploader>());
            uploader.Enqueue(digest, "application/octet-stream");
            uploader.Start();
            Assert.True(await Poll.UntilAsync(() => queue.Count == 0, TimeSpan.FromSeconds(30)), harness.Log.Tail());
        }

        var secrets = new[] { Engine.AccessKey, Engine.SecretKey, "wrong" + Engine.SecretKey[5..] };
        var log = harness.Log.Text + forged.Log.Text;
        Assert.True(harness.Log.Lines.Count > 3 && forged.Log.Lines.Count > 1, log);
        Assert.Contains("the keys are wrong", forged.Log.Text, StringComparison.Ordinal);
        var files = Directory.GetFiles(Dir.Combine("data"), "index*");
        Assert.NotEmpty(files);
        foreach (var secret in secrets)
        {
            Assert.DoesNotContain(secret, log, StringComparison.Ordinal);
            foreach (var file in files)
            {
                var bytes = await File.ReadAllBytesAsync(file);
                Assert.False(Contains(bytes, Encoding.UTF8.GetBytes(secret)) || Contains(bytes, Encoding.Unicode.GetBytes(secret)), $"{file} holds a key");
            }
        }
    }

    private static Digest WriteCommitted(BlobStore store, long size, int seed)
    {
        var temp = Path.Combine(store.TempRoot, $"blob-{seed}");
        var digest = TierHarness.WriteBlob(temp, size, seed);
        store.Commit(temp, digest);
        return digest;
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
