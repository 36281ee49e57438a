using System.Security.Cryptography;
using Amazon.S3.Model;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>The tier against a real Ceph RGW: every operation's round trip, multipart, ranges, tags and a corrupted object.</summary>
[Collection(CephRoundTripCollection.Name)]
public sealed class S3BlobTierTests(CephEngineFixture fixture) : IDisposable
{
    private readonly TempDir _dir = TempDir.Create("s3-tier");

    [Fact]
    public async Task UploadAsync_SmallBlob_IsOneObjectThatReadsBackVerified()
    {
        using var harness = TierHarness.Create(fixture.Engine);
        var path = _dir.Combine("small");
        var digest = TierHarness.WriteBlob(path, 300_000, seed: 1);

        Assert.Equal(TierOutcome.NotFound, (await harness.Tier.HeadAsync(digest, default)).Outcome);
        Assert.Equal(UploadOutcome.Uploaded, await harness.Tier.UploadAsync(digest, path, "application/vnd.oci.image.layer.v1.tar+gzip", default));

        var head = await harness.Tier.HeadAsync(digest, default);
        Assert.Equal((TierOutcome.Found, 300_000L, "application/vnd.oci.image.layer.v1.tar+gzip"), (head.Outcome, head.Length, head.MediaType));
        Assert.Equal(await File.ReadAllBytesAsync(path), await harness.ReadObjectDirectlyAsync(digest));
        Assert.Equal($"{harness.Settings.Prefix}/blobs/sha256/{digest.Hex[..2]}/{digest.Hex}", harness.Tier.Layout.BlobKey(digest));

        using var copy = new MemoryStream();
        Assert.Equal(TierOutcome.Found, await harness.Tier.CopyVerifiedAsync(digest, copy, default));
        Assert.Equal(await File.ReadAllBytesAsync(path), copy.ToArray());
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
        Assert.Equal(300_000, harness.Metrics.Value("mitmcache_blob_store_bytes_total", ("direction", "upload")));
        Assert.Equal(300_000, harness.Metrics.Value("mitmcache_blob_store_bytes_total", ("direction", "download")));
    }

    [Fact]
    public async Task OpenReadAsync_FromAnOffset_StreamsTheRestAndTellsTheWholeLength()
    {
        using var harness = TierHarness.Create(fixture.Engine);
        var path = _dir.Combine("ranged");
        var digest = await harness.UploadNewAsync(path, 1_000_000, seed: 2);

        await using var read = await harness.Tier.OpenReadAsync(digest, 654_321, default);

        Assert.Equal((TierOutcome.Found, 1_000_000L, 654_321L), (read.Outcome, read.Length, read.Offset));
        using var rest = new MemoryStream();
        await read.Body!.CopyToAsync(rest);
        Assert.Equal((await File.ReadAllBytesAsync(path))[654_321..], rest.ToArray());
    }

    [Fact]
    public async Task UploadAsync_AboveTheThreshold_UploadsInPartsThatReadBackVerified()
    {
        using var harness = TierHarness.Create(fixture.Engine, s => s with { MultipartThreshold = 5 << 20, PartSize = 5 << 20 });
        var path = _dir.Combine("large");
        var size = (12L << 20) + 12_345; // three parts, the last one short
        var digest = TierHarness.WriteBlob(path, size, seed: 3);

        var outcome = await harness.Tier.UploadAsync(digest, path, "application/octet-stream", default);
        Assert.True(outcome == UploadOutcome.Uploaded, $"{outcome}\n{harness.Log.Tail()}");

        // S3 engines give a multipart object the ETag "md5-of-part-md5s-N", N the number of parts.
        using var client = fixture.Engine.CreateClient();
        var metadata = await client.GetObjectMetadataAsync(CephEngineFixture.Bucket, harness.Tier.Layout.BlobKey(digest));
        Assert.EndsWith("-3\"", metadata.ETag, StringComparison.Ordinal);
        Assert.Equal(size, metadata.ContentLength);
        await using var sink = File.Create(_dir.Combine("large.copy"));
        Assert.Equal(TierOutcome.Found, await harness.Tier.CopyVerifiedAsync(digest, sink, default));
        Assert.Equal(size, harness.Metrics.Value("mitmcache_blob_store_bytes_total", ("direction", "upload")));
    }

    [Fact]
    public async Task DeleteAsync_RemovesTheObject_AndAMissingObjectIsAMiss()
    {
        using var harness = TierHarness.Create(fixture.Engine);
        var path = _dir.Combine("deleted");
        var digest = await harness.UploadNewAsync(path, 4096, seed: 4);

        Assert.Equal(TierOutcome.Found, await harness.Tier.DeleteAsync(digest, default));

        Assert.Equal(TierOutcome.NotFound, (await harness.Tier.HeadAsync(digest, default)).Outcome);
        await using var read = await harness.Tier.OpenReadAsync(digest, 0, default);
        Assert.Equal(TierOutcome.NotFound, read.Outcome);
        Assert.Null(read.Body);
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_misses_total", ("kind", "blob")));
        Assert.True(harness.Tier.IsHealthy);
    }

    [Fact]
    public async Task CopyVerifiedAsync_ObjectReplacedByHand_IsCorruptDeletedAndCounted()
    {
        using var harness = TierHarness.Create(fixture.Engine);
        var path = _dir.Combine("tampered");
        var digest = await harness.UploadNewAsync(path, 200_000, seed: 5);
        var forged = await File.ReadAllBytesAsync(path);
        forged[100_000] ^= 0xFF;
        using (var client = fixture.Engine.CreateClient())
        {
            await client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = CephEngineFixture.Bucket, Key = harness.Tier.Layout.BlobKey(digest), InputStream = new MemoryStream(forged),
            });
        }

        using var copy = new MemoryStream();
        Assert.Equal(TierOutcome.Corrupt, await harness.Tier.CopyVerifiedAsync(digest, copy, default));

        Assert.Null(await harness.ReadObjectDirectlyAsync(digest));
        Assert.Equal(1, harness.Metrics.Value("mitmcache_blob_store_corrupt_objects_total"));
        Assert.Contains(harness.Log.Lines, l => l.Contains("does not match its digest", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UploadAsync_LocalFileNoLongerMatchesItsDigest_IsNeverUploaded()
    {
        using var harness = TierHarness.Create(fixture.Engine);
        var path = _dir.Combine("rotten");
        var digest = TierHarness.WriteBlob(path, 10_000, seed: 6);
        await File.WriteAllBytesAsync(path, RandomNumberGenerator.GetBytes(10_000));

        Assert.Equal(UploadOutcome.SourceCorrupt, await harness.Tier.UploadAsync(digest, path, "application/octet-stream", default));
        Assert.Equal(UploadOutcome.SourceMissing, await harness.Tier.UploadAsync(digest, _dir.Combine("gone"), "application/octet-stream", default));

        Assert.Null(await harness.ReadObjectDirectlyAsync(digest));
    }

    [Fact]
    public async Task PutTagAsync_ThenGetTagAsync_AnswersTheTagForAnotherInstance()
    {
        using var writer = TierHarness.Create(fixture.Engine);
        using var reader = TierHarness.Create(fixture.Engine, s => s with { Prefix = writer.Settings.Prefix });
        var digest = Digest.Compute("manifest"u8).ToString();
        var pointer = new TagPointer("registry.test:5000", "team/app", "v1.2", digest, "application/vnd.oci.image.index.v1+json",
            new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));

        Assert.Equal(TierOutcome.Found, await writer.Tier.PutTagAsync(pointer, default));

        var found = await reader.Tier.GetTagAsync("registry.test:5000", "team/app", "v1.2", default);
        Assert.Equal((TierOutcome.Found, pointer), (found.Outcome, found.Value));
        Assert.Equal(TierOutcome.NotFound, (await reader.Tier.GetTagAsync("registry.test:5000", "team/app", "v9", default)).Outcome);
        Assert.Equal(1, reader.Metrics.Value("mitmcache_blob_store_hits_total", ("kind", "tag")));
        Assert.Equal(1, reader.Metrics.Value("mitmcache_blob_store_misses_total", ("kind", "tag")));
    }

    [Fact]
    public async Task GetTagAsync_NamesOutsideTheGrammarOrAForgedObject_AreNotFound()
    {
        using var harness = TierHarness.Create(fixture.Engine);
        var digest = Digest.Compute("m"u8).ToString();

        Assert.Equal(TierOutcome.NotFound, await harness.Tier.PutTagAsync(new TagPointer("registry.test", "a/../../blobs", "t", digest, "application/vnd.oci.image.manifest.v1+json", default), default));
        Assert.Null(harness.Tier.Layout.TagKey("Registry.test", "app", "latest"));
        Assert.Null(harness.Tier.Layout.TagKey("registry.test", "app", "../x"));

        var key = harness.Tier.Layout.TagKey("registry.test", "app", "latest")!;
        using (var client = fixture.Engine.CreateClient())
        {
            // A pointer whose names do not match its key (copied from another tag) and one that is not JSON.
            await client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = CephEngineFixture.Bucket, Key = key,
                ContentBody = $$"""{"registry":"registry.test","repository":"other","tag":"latest","digest":"{{digest}}","mediaType":"application/vnd.oci.image.manifest.v1+json"}""",
            });
            Assert.Equal(TierOutcome.NotFound, (await harness.Tier.GetTagAsync("registry.test", "app", "latest", default)).Outcome);
            await client.PutObjectAsync(new PutObjectRequest { BucketName = CephEngineFixture.Bucket, Key = key, ContentBody = "not json" });
        }

        Assert.Equal(TierOutcome.NotFound, (await harness.Tier.GetTagAsync("registry.test", "app", "latest", default)).Outcome);
        Assert.True(harness.Tier.IsHealthy); // a bad object is not a bad engine
        Assert.Equal(2, harness.Log.Lines.Count(l => l.Contains("is not a valid tag pointer", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task PutPingAsync_ThenGetPingAsync_AnswersTheRegistryForAnotherInstance_ButNotAnObjectNamingAnotherRegistry()
    {
        using var writer = TierHarness.Create(fixture.Engine);
        using var reader = TierHarness.Create(fixture.Engine, s => s with { Prefix = writer.Settings.Prefix });
        var ping = new SharedPing("registry.test:5000", "Bearer realm=\"https://auth.test/token\",service=\"registry.test\"", null,
            new DateTimeOffset(2026, 12, 3, 8, 0, 0, TimeSpan.Zero));

        Assert.Equal(TierOutcome.Found, await writer.Tier.PutPingAsync(ping, default));
        Assert.Equal(TierOutcome.NotFound, await writer.Tier.PutPingAsync(ping with { Registry = "Registry.Test" }, default));

        var found = await reader.Tier.GetPingAsync("registry.test:5000", default);
        Assert.Equal((TierOutcome.Found, ping), (found.Outcome, found.Value));
        Assert.Equal(TierOutcome.NotFound, (await reader.Tier.GetPingAsync("other.test", default)).Outcome);
        using (var client = fixture.Engine.CreateClient())
        {
            // Another registry's answer copied under this one's key.
            await client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = CephEngineFixture.Bucket, Key = reader.Tier.Layout.PingKey("other.test")!,
                ContentBody = """{"registry":"registry.test:5000","wwwAuthenticate":null,"redirect":null,"seenAt":"2026-12-03T08:00:00+00:00"}""",
            });
        }

        Assert.Equal(TierOutcome.NotFound, (await reader.Tier.GetPingAsync("other.test", default)).Outcome);
        Assert.Equal(1, reader.Metrics.Value("mitmcache_blob_store_hits_total", ("kind", "ping")));
        Assert.Equal(2, reader.Metrics.Value("mitmcache_blob_store_misses_total", ("kind", "ping")));
    }

    public void Dispose() => _dir.Dispose();
}
