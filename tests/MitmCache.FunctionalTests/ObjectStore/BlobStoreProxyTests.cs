using System.Net;
using MitmCache.Configuration;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// The proxy with <c>--blob-store</c> against the real engine and the real registry: what a pull leaves in the bucket, a
/// fresh parent answering from it while the registry is dead, the private-image rule, a poisoned object, and keys that
/// never reach a log line or the index.
/// </summary>
[Collection(CephRoundTripCollection.Name)]
public sealed class BlobStoreProxyTests(CephEngineFixture fixture) : IDisposable
{
    private readonly TempDir _dir = TempDir.Create("s3-proxy");

    private CephRgw Engine => fixture.Engine;

    /// <summary>The settings of a parent on <paramref name="prefix"/> of the shared bucket, keys from the engine's variables.</summary>
    internal static ProxySettings WithBlobStore(ProxySettings settings, CephRgw engine, string prefix, string? dataDirectory = null,
        Func<BlobStoreSettings, BlobStoreSettings>? tune = null)
    {
        var errors = new List<string>();
        var tier = BlobStoreSettings.Parse($"s3://{CephEngineFixture.Bucket}/{prefix}", engine.Endpoint.ToString(), null, errors)
            ?? throw new InvalidOperationException(string.Join("; ", errors));
        return settings with
        {
            DataDirectory = dataDirectory ?? settings.DataDirectory,
            BlobStoreLocation = tier.Location,
            S3Endpoint = engine.Endpoint.ToString(),
            BlobStore = (tune ?? (t => t))(tier with { BreakerOpen = TimeSpan.FromMilliseconds(300), BreakerMaxOpen = TimeSpan.FromSeconds(1), UploadRetryMin = TimeSpan.FromMilliseconds(100) }),
            CredentialVariables = name => engine.CredentialVariables.GetValueOrDefault(name),
        };
    }

    internal static async Task<bool> ObjectExistsAsync(CephRgw engine, string key)
    {
        using var client = engine.CreateClient();
        try
        {
            await client.GetObjectMetadataAsync(CephEngineFixture.Bucket, key);
            return true;
        }
        catch (Amazon.S3.AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>Whether <paramref name="count"/> uploads are done and none waits (the counter and the queue as <c>/metrics</c> shows them).</summary>
    internal static async Task<bool> UploadedAsync(ProxyUnderTest proxy, int count)
    {
        var metrics = await proxy.ScrapeMetricsAsync();
        return metrics.Value("mitmcache_blob_store_uploads_total", ("result", "uploaded")) == count
            && metrics.Value("mitmcache_blob_store_upload_queue_length") == 0;
    }

    internal static async Task<byte[]> ReadObjectAsync(CephRgw engine, string key)
    {
        using var client = engine.CreateClient();
        using var response = await client.GetObjectAsync(CephEngineFixture.Bucket, key);
        using var memory = new MemoryStream();
        await response.ResponseStream.CopyToAsync(memory);
        return memory.ToArray();
    }

    private static Digest Parse(string digest) => Digest.TryParse(digest, out var parsed) ? parsed : throw new ArgumentException(digest);

    /// <summary>Where a blob must be in the bucket, spelled out here rather than taken from <see cref="ObjectLayout"/>.</summary>
    internal static string BlobKeyByHand(string prefix, string digest) => $"{prefix}/blobs/sha256/{digest[7..9]}/{digest[7..]}";

    [Fact]
    public async Task Pull_ObjectsAppear_ThenAFreshParentWithTheRegistryDeadServesTheManifestByTagAndDigest()
    {
        var prefix = $"proxy-{Guid.NewGuid():N}";
        var layout = new ObjectLayout(prefix);
        // Parts of 5 MiB from 5 MiB on: the 6 MB layer goes up in two parts, the rest in one PUT each.
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false,
            s => WithBlobStore(s, Engine, prefix, tune: t => t with { MultipartThreshold = 5 << 20, PartSize = 5 << 20 }));
        var image = await world.PushImageAsync("library/alpine", "3.20", (6_000_000, 1), (30_000, 2));
        var registry = world.Authority;
        var manifest = Parse(image.ManifestDigest);

        var pull = await Skopeo.CopyToOciAsync($"{registry}/library/alpine:3.20", _dir.Combine("oci-1"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);

        // Every layer and the config at PREFIX/blobs/sha256/ab/<hex>, byte for byte; the manifest by digest, the tag's
        // pointer, and the public link of the manifest (anonymous pull: public).
        var blobKeys = image.Blobs.Select(b => BlobKeyByHand(prefix, b.Digest)).Append(BlobKeyByHand(prefix, image.ManifestDigest)).ToList();
        Assert.True(await Poll.UntilAsync(async () =>
            await UploadedAsync(world.Proxy, blobKeys.Count)
                && await ObjectExistsAsync(Engine, layout.TagKey(registry, "library/alpine", "3.20")!)
                && await ObjectExistsAsync(Engine, layout.PublicLinkKey(registry, "library/alpine", manifest)!), TimeSpan.FromSeconds(30)),
            world.Proxy.Log.Tail());
        foreach (var (digest, bytes) in image.Blobs.Append((image.ManifestDigest, image.Manifest)))
        {
            Assert.Equal(bytes, await ReadObjectAsync(Engine, BlobKeyByHand(prefix, digest)));
        }

        var metrics = await world.Proxy.ScrapeMetricsAsync();
        Assert.Equal(0, metrics.Value("mitmcache_blob_store_uploads_total", ("result", "failed")));
        Assert.Equal(0, metrics.Value("mitmcache_blob_store_breaker_state"));

        // A second parent on the same bucket that never saw the image, with the registry dead.
        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        await world.KillUpstreamsAsync();

        var byTag = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/library/alpine/manifests/3.20");
        Assert.Equal(HttpStatusCode.OK, byTag.Status);
        Assert.Equal(image.Manifest, byTag.Body);
        var byDigest = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/library/alpine/manifests/{image.ManifestDigest}");
        Assert.Equal(HttpStatusCode.OK, byDigest.Status);
        Assert.Equal(image.Manifest, byDigest.Body);
        Assert.Equal(2, (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
    }

    [Fact]
    public async Task PrivateImage_InTheBucketOnly_RefusedToAClientWithoutAGrant_ExactlyAsAnUncachedOne()
    {
        const string password = "alice-pw-7";
        var prefix = $"private-{Guid.NewGuid():N}";
        var layout = new ObjectLayout(prefix);
        string[] acl(string? user, string repository, string[] requested) => (user, repository) switch
        {
            (TokenServer.AdminUser, _) => requested,
            ("alice", "private/app") => requested.Where(a => a == "pull").ToArray(),
            _ => [],
        };
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, s => WithBlobStore(s, Engine, prefix), acl: acl,
            users: new Dictionary<string, string> { ["alice"] = password });
        var image = await world.PushImageAsync("private/app", "v1", (50_000, 3));
        var registry = world.Authority;
        var manifest = Parse(image.ManifestDigest);

        var pull = await Skopeo.CopyToOciAsync($"{registry}/private/app:v1", _dir.Combine("oci-alice"), world.Proxy.Url, world.Proxy.CaBundlePath, $"alice:{password}", false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
        Assert.True(await Poll.UntilAsync(async () => await ObjectExistsAsync(Engine, layout.BlobKey(manifest))
            && await ObjectExistsAsync(Engine, layout.TagKey(registry, "private/app", "v1")!), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
        Assert.False(await ObjectExistsAsync(Engine, layout.PublicLinkKey(registry, "private/app", manifest)!), "a private repository's link stays with its instance");

        // A fresh parent, the registry dead: the bucket has the bytes and the tag, and nothing says who may read them.
        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        await world.KillUpstreamsAsync();

        foreach (var user in new[] { (string?)null, "alice" })
        {
            var password2 = user is null ? null : password;
            var inBucket = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/private/app/manifests/{image.ManifestDigest}", user, password2);
            var byTag = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/private/app/manifests/v1", user, password2);
            var never = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/private/other/manifests/v1", user, password2);
            Assert.NotEqual(HttpStatusCode.OK, inBucket.Status);
            Assert.Equal(never.Status, inBucket.Status);
            Assert.Equal(never.Status, byTag.Status);
            Assert.DoesNotContain(image.ManifestDigest, System.Text.Encoding.UTF8.GetString(inBucket.Body), StringComparison.Ordinal);
        }

        Assert.Equal(0, (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
    }

    [Fact]
    public async Task PoisonedObject_NeverServed_DeletedAndCounted_AndTheKeysReachNoLogAndNoIndex()
    {
        var prefix = $"poison-{Guid.NewGuid():N}";
        var layout = new ObjectLayout(prefix);
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => WithBlobStore(s, Engine, prefix));
        var image = await world.PushImageAsync("library/nginx", "1.27", (40_000, 4));
        var registry = world.Authority;
        var manifest = Parse(image.ManifestDigest);
        var online = await RegistryCalls.GetAsync(world.Proxy, $"https://{registry}/v2/library/nginx/manifests/1.27");
        Assert.Equal(HttpStatusCode.OK, online.Status);
        Assert.True(await Poll.UntilAsync(() => ObjectExistsAsync(Engine, layout.BlobKey(manifest)), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());

        // Same length, other bytes, by hand.
        var poison = image.Manifest.ToArray();
        poison[^2] ^= 0x20;
        using (var client = Engine.CreateClient())
        {
            await client.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest
            {
                BucketName = CephEngineFixture.Bucket, Key = layout.BlobKey(manifest), InputStream = new MemoryStream(poison), ContentType = image.MediaType,
            });
        }

        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        await world.KillUpstreamsAsync();
        var offline = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/library/nginx/manifests/{image.ManifestDigest}");

        Assert.NotEqual(HttpStatusCode.OK, offline.Status);
        Assert.NotEqual(poison, offline.Body);
        Assert.False(await ObjectExistsAsync(Engine, layout.BlobKey(manifest)), "the poisoned object was deleted");
        Assert.Equal(1, (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_corrupt_objects_total"));

        // No key anywhere: not in either proxy's log, not in either index file.
        await parent2.StopAsync();
        await world.Proxy.StopAsync();
        foreach (var secret in new[] { Engine.SecretKey, Engine.AccessKey })
        {
            Assert.DoesNotContain(world.Proxy.Log.Lines, l => l.Contains(secret, StringComparison.Ordinal));
            Assert.DoesNotContain(parent2.Log.Lines, l => l.Contains(secret, StringComparison.Ordinal));
            foreach (var index in new[] { world.Proxy.Settings.Layout.Index, parent2.Settings.Layout.Index })
            {
                Assert.DoesNotContain(secret, System.Text.Encoding.Latin1.GetString(await File.ReadAllBytesAsync(index)), StringComparison.Ordinal);
            }
        }
    }

    public void Dispose() => _dir.Dispose();
}
