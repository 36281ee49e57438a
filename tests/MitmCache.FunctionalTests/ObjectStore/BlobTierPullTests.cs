using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using static MitmCache.FunctionalTests.ObjectStore.BlobStoreProxyTests;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// Issue 17's must-show pulls, layers included, with real parents, the real registry, skopeo and the real engine: a
/// parent lost with its disk is no blob lost; a corrupted object is never served; a private layer in the bucket is
/// refused as a local one would be.
/// </summary>
[Collection(CephRoundTripCollection.Name)]
public sealed class BlobTierPullTests(CephEngineFixture fixture) : IDisposable
{
    private readonly TempDir _dir = TempDir.Create("s3-pull");

    private CephRgw Engine => fixture.Engine;

    [Fact]
    public async Task TwoParentsOneBucket_Parent1LostWithItsDisk_ChildrenPullThroughParent2ByTagAndDigest_RegistryDead_NoRegistryBlobGets()
    {
        var prefix = $"two-parents-{Guid.NewGuid():N}";
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => WithBlobStore(s, Engine, prefix)); // world.Proxy: parent 1
        var image = await world.PushImageAsync("library/postgres", "16", (400_000, 21), (60_000, 22));
        var registry = world.Authority;
        await PullAsync(world.Proxy.Url, world.Proxy.CaBundlePath, $"{registry}/library/postgres:16");
        await WaitSharedAsync(world, prefix, image, "library/postgres");
        var registryBlobGets = world.Registry.CountRequests("GET", "/blobs/");

        // Parent 1 goes, and its disk with it; parent 2 has served this registry before (its /v2/ answer is remembered),
        // never this image; the registry dies.
        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        Assert.Equal(HttpStatusCode.OK, (await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/")).Status);
        await world.Proxy.StopAsync();
        Directory.Delete(world.Proxy.Settings.DataDirectory, recursive: true);
        await world.KillUpstreamsAsync();

        await using var byTag = await StartChildAsync(world, parent2, "child-tag");
        await PullAsync(byTag.Url, byTag.CaBundlePath, $"{registry}/library/postgres:16");
        await using var byDigest = await StartChildAsync(world, parent2, "child-digest");
        await PullAsync(byDigest.Url, byDigest.CaBundlePath, $"{registry}/library/postgres@{image.ManifestDigest}");

        Assert.Equal(registryBlobGets, world.Registry.CountRequests("GET", "/blobs/"));
        var metrics = await parent2.ScrapeMetricsAsync();
        Assert.True(metrics.Value("mitmcache_blob_store_hits_total", ("kind", "blob")) >= image.Blobs.Count() + 1, parent2.Log.Tail());
        await parent2.Get<MitmCache.Caching.BlobCache>().FillsEnded(); // the commit follows the client's last byte
        foreach (var (digest, bytes) in image.Blobs)
        {
            Assert.True(Digest.TryParse(digest, out var parsed) && parent2.Get<MitmCache.Caching.BlobCache>().TryGet(parsed) is not null, $"{digest} is on parent 2's disk now");
            Assert.Equal(bytes, await File.ReadAllBytesAsync(new MitmCache.Caching.BlobStore(parent2.Settings.Layout).PathOf(parsed)));
        }
    }

    [Fact]
    public async Task FreshParent_NeverSawTheRegistry_RegistryAndTokenServerDead_ServesASkopeoPullByTag_PingAnsweredFromTheBucket()
    {
        var prefix = $"shared-ping-{Guid.NewGuid():N}";
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, s => WithBlobStore(s, Engine, prefix)); // world.Proxy: parent 1
        var image = await world.PushImageAsync("library/redis", "7", (200_000, 26), (30_000, 27));
        var registry = world.Authority;
        await PullAsync(world.Proxy.Url, world.Proxy.CaBundlePath, $"{registry}/library/redis:7");
        await WaitSharedAsync(world, prefix, image, "library/redis");
        Assert.True(await Poll.UntilAsync(() => ObjectExistsAsync(Engine, $"{prefix}/registries/{registry}/ping"), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail()); // the key by hand
        await world.KillUpstreamsAsync();

        // Parent 2 never saw this registry: its /v2/ answer (the token challenge) comes from the bucket, and with it the realm,
        // so the anonymous token request is answered offline; the manifest by its tag pointer, the blobs from the bucket.
        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        var ping = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/");
        Assert.True(HttpStatusCode.OK == ping.Status, $"{ping.Status} (without the shared answer: 502)\n{parent2.Log.Tail()}"); // 401 from the bucket, a local token, 200
        await PullAsync(parent2.Url, parent2.CaBundlePath, $"{registry}/library/redis:7");
        await parent2.Get<MitmCache.Caching.BlobCache>().FillsEnded(); // the commit follows the client's last byte
        foreach (var (digest, _) in image.Blobs)
        {
            Assert.True(Digest.TryParse(digest, out var parsed) && parent2.Get<MitmCache.Caching.BlobCache>().TryGet(parsed) is not null, $"{digest} is on parent 2's disk now");
        }
    }

    [Fact]
    public async Task CorruptedLayerInTheBucket_NeverServed_Removed_RefetchedFromTheRegistry_Counted_AndUploadedAgain()
    {
        var prefix = $"corrupt-{Guid.NewGuid():N}";
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => WithBlobStore(s, Engine, prefix));
        var image = await world.PushImageAsync("library/mysql", "8", (300_000, 23), (40_000, 24));
        var registry = world.Authority;
        await PullAsync(world.Proxy.Url, world.Proxy.CaBundlePath, $"{registry}/library/mysql:8");
        await WaitSharedAsync(world, prefix, image, "library/mysql");
        var (poisoned, bytes) = image.Layers[0];
        var key = BlobKeyByHand(prefix, poisoned);
        var poison = bytes.ToArray();
        poison[^100] ^= 0x04; // same length, one bit, by hand
        using (var client = Engine.CreateClient())
        {
            await client.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = CephEngineFixture.Bucket, Key = key, InputStream = new MemoryStream(poison) });
        }

        var gets = world.Registry.CountRequests("GET", poisoned);
        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));

        // The poisoned copy never reaches a client as a clean end (the fill holds its last byte until the digest matches):
        // a client that got it whole would have failed skopeo's own check. The pull is tried at most twice.
        var first = await Skopeo.CopyToOciAsync($"{registry}/library/mysql:8", _dir.Combine("oci-1"), parent2.Url, parent2.CaBundlePath, null, false, CancellationToken.None);
        if (!first.Succeeded)
        {
            await PullAsync(parent2.Url, parent2.CaBundlePath, $"{registry}/library/mysql:8");
        }

        await world.Registry.SyncAccessLogAsync();
        Assert.Equal(gets + 1, world.Registry.CountRequests("GET", poisoned)); // refetched once, from the registry
        Assert.Equal(1, (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_corrupt_objects_total"));
        Assert.True(Digest.TryParse(poisoned, out var digest));
        await parent2.Get<MitmCache.Caching.BlobCache>().FillsEnded(); // the commit follows the client's last byte
        Assert.Equal(bytes, await File.ReadAllBytesAsync(new MitmCache.Caching.BlobStore(parent2.Settings.Layout).PathOf(digest)));
        // Removed, then uploaded again from parent 2's verified copy.
        Assert.True(await Poll.UntilAsync(async () => await ObjectExistsAsync(Engine, key) && (await ReadObjectAsync(Engine, key)).SequenceEqual(bytes),
            TimeSpan.FromSeconds(30)), parent2.Log.Tail());
    }

    [Fact]
    public async Task PrivateLayerInTheBucket_RefusedThroughAFreshParentWithoutAGrant_ExactlyAsAnUncachedOne_RegistryUpAndDown()
    {
        const string password = "carol-pw-5";
        var prefix = $"private-layer-{Guid.NewGuid():N}";
        await using var world = await StartPrivateWorldAsync(Engine, prefix, "carol", password, "private/api");
        var image = await world.PushImageAsync("private/api", "v3", (90_000, 25));
        var registry = world.Authority;
        await PullAsync(world.Proxy.Url, world.Proxy.CaBundlePath, $"{registry}/private/api:v3", $"carol:{password}");
        Assert.True(await Poll.UntilAsync(() => UploadedAsync(world.Proxy, image.Blobs.Count() + 1), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
        var layer = image.Layers[0].Digest;
        var never = $"sha256:{new string('e', 64)}";

        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        foreach (var registryUp in new[] { true, false })
        {
            if (!registryUp)
            {
                await world.KillUpstreamsAsync();
            }

            var inBucket = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/private/api/blobs/{layer}");
            var uncached = await RegistryCalls.GetAsync(parent2, $"https://{registry}/v2/private/api/blobs/{never}");
            Assert.NotEqual(HttpStatusCode.OK, inBucket.Status);
            Assert.Equal(uncached.Status, inBucket.Status);
            Assert.NotEqual(image.Layers[0].Bytes, inBucket.Body);
        }

        Assert.Equal(0, (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
        Assert.True(await ObjectExistsAsync(Engine, BlobKeyByHand(prefix, layer)), "refused, not deleted");
    }

    /// <summary>Waits until parent 1 has uploaded the manifest and every blob, and shared the tag and the public links the offline answers need.</summary>
    private async Task WaitSharedAsync(RegistryWorld world, string prefix, BuiltImage image, string repository)
    {
        var layout = new ObjectLayout(prefix);
        var digests = image.Blobs.Select(b => b.Digest).Append(image.ManifestDigest).Select(d => Digest.TryParse(d, out var p) ? p : default).ToList();
        Assert.True(await Poll.UntilAsync(async () => await UploadedAsync(world.Proxy, digests.Count)
            && (await Task.WhenAll(digests.Select(d => ObjectExistsAsync(Engine, layout.PublicLinkKey(world.Authority, repository, d)!)))).All(e => e),
            TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
    }

    /// <summary>A node-local child whose only parent is <paramref name="parent"/>; it trusts the parent's CA for the registry.</summary>
    private static async Task<ProxyUnderTest> StartChildAsync(RegistryWorld world, ProxyUnderTest parent, string name)
    {
        var trust = world.Dir.Combine($"{name}-trust.pem");
        await File.WriteAllTextAsync(trust, await File.ReadAllTextAsync(world.Pki.CaCertPath) + "\n" + await File.ReadAllTextAsync(parent.CaBundlePath));
        return await ProxyUnderTest.StartAsync(world.DefaultProxySettings() with
        {
            DataDirectory = world.Dir.Combine(name),
            ConnectTo = [],
            UpstreamProxies = [new Uri(parent.Url)],
            UpstreamCaFile = trust,
        });
    }

    private async Task PullAsync(string proxyUrl, string caBundle, string reference, string? credentials = null)
    {
        var pull = await Skopeo.CopyToOciAsync(reference, _dir.Combine($"oci-{Guid.NewGuid():N}"), proxyUrl, caBundle, credentials, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
    }

    public void Dispose() => _dir.Dispose();
}
