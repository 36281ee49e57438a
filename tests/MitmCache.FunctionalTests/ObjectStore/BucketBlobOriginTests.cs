using Microsoft.AspNetCore.Http;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using MitmCache.Tunneling;
using static MitmCache.FunctionalTests.ObjectStore.BlobStoreProxyTests;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// <see cref="IBucketBlobOrigin"/> as a second parent's host builds it, against the real engine, on layers a first parent
/// pulled from the real registry and uploaded: the bytes come back whole and verified, a poisoned object is never a clean
/// read (deleted, counted, gone for the next open), and a private layer is refused to a client without a grant.
/// </summary>
[Collection(CephRoundTripCollection.Name)]
public sealed class BucketBlobOriginTests(CephEngineFixture fixture) : IDisposable
{
    private readonly TempDir _dir = TempDir.Create("s3-origin");

    private CephRgw Engine => fixture.Engine;

    /// <summary>Pulls <paramref name="reference"/> through the world's proxy and waits until it uploaded the manifest and every blob.</summary>
    private async Task PullAndUploadAsync(RegistryWorld world, BuiltImage image, string reference, string? credentials = null)
    {
        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/{reference}", _dir.Combine($"oci-{Guid.NewGuid():N}"), world.Proxy.Url, world.Proxy.CaBundlePath,
            credentials, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
        Assert.True(await Poll.UntilAsync(() => UploadedAsync(world.Proxy, image.Blobs.Count() + 1), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
    }

    private static InterceptTarget Target(RegistryWorld world) => new(world.Registry.Host, world.Registry.Port);

    private static async Task<byte[]> ReadAllAsync(Stream body)
    {
        using var memory = new MemoryStream();
        await body.CopyToAsync(memory);
        return memory.ToArray();
    }

    private static Digest Parse(string digest) => Digest.TryParse(digest, out var parsed) ? parsed : throw new ArgumentException(digest);

    [Fact]
    public async Task OpenAsync_PublicLayers_FreshParentWithTheRegistryDead_BytesRoundTrip_AndAMissingDigestIsNull()
    {
        var prefix = $"origin-{Guid.NewGuid():N}";
        var layout = new ObjectLayout(prefix);
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => WithBlobStore(s, Engine, prefix));
        var image = await world.PushImageAsync("library/busybox", "1.36", (300_000, 11), (5_000, 12));
        await PullAndUploadAsync(world, image, "library/busybox:1.36");
        Assert.True(await Poll.UntilAsync(async () => (await Task.WhenAll(image.Layers.Select(l =>
            ObjectExistsAsync(Engine, layout.PublicLinkKey(world.Authority, "library/busybox", Parse(l.Digest))!)))).All(e => e), TimeSpan.FromSeconds(30)),
            "every layer's public link is shared: " + world.Proxy.Log.Tail());

        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        await world.KillUpstreamsAsync();
        var origin = parent2.Get<IBucketBlobOrigin>();
        var context = new DefaultHttpContext(); // a client without credentials

        foreach (var (layer, bytes) in image.Layers)
        {
            var digest = Parse(layer);
            using var access = origin.Capture(context, Target(world), "library/busybox", digest);
            await using var blob = await origin.OpenAsync(digest, 0, access, default);
            Assert.NotNull(blob);
            Assert.Equal(bytes.Length, blob.Length);
            Assert.Equal(bytes, await ReadAllAsync(blob.Body));
            Assert.Contains("public link", blob.Reason, StringComparison.Ordinal);
        }

        // The rest of a blob, as a reader whose disk failed asks for it.
        var (first, firstBytes) = image.Layers[0];
        using (var access = origin.Capture(context, Target(world), "library/busybox", Parse(first)))
        {
            await using var rest = await origin.OpenAsync(Parse(first), 1000, access, default);
            Assert.NotNull(rest);
            Assert.Equal(1000, rest.Offset);
            Assert.Equal(firstBytes.Length, rest.Length);
            Assert.Equal(firstBytes[1000..], await ReadAllAsync(rest.Body));
        }

        var absent = Parse($"sha256:{new string('0', 64)}");
        using (var access = origin.Capture(context, Target(world), "library/busybox", absent))
        {
            Assert.Null(await origin.OpenAsync(absent, 0, access, default));
        }

        var metrics = await parent2.ScrapeMetricsAsync();
        Assert.Equal(image.Layers.Count + 1, metrics.Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
        Assert.Equal(1, metrics.Value("mitmcache_blob_store_misses_total", ("kind", "blob")));
        Assert.Equal(0, metrics.Value("mitmcache_blob_store_corrupt_objects_total"));
    }

    [Fact]
    public async Task OpenAsync_PoisonedLayer_NeverACleanRead_DeletedCounted_AndTheNextOpenIsNull()
    {
        var prefix = $"origin-poison-{Guid.NewGuid():N}";
        var layout = new ObjectLayout(prefix);
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => WithBlobStore(s, Engine, prefix));
        var image = await world.PushImageAsync("library/redis", "7", (200_000, 13));
        await PullAndUploadAsync(world, image, "library/redis:7");
        var (layer, bytes) = image.Layers[0];
        var digest = Parse(layer);

        // Same length, one bit changed near the end, by hand.
        var poison = bytes.ToArray();
        poison[^10] ^= 0x01;
        using (var client = Engine.CreateClient())
        {
            await client.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest
            {
                BucketName = CephEngineFixture.Bucket, Key = layout.BlobKey(digest), InputStream = new MemoryStream(poison),
            });
        }

        // The first parent (linked here, public): allowed, and the read is never a clean end.
        var origin = world.Proxy.Get<IBucketBlobOrigin>();
        var context = new DefaultHttpContext();
        using (var access = origin.Capture(context, Target(world), "library/redis", digest))
        {
            await using var blob = await origin.OpenAsync(digest, 0, access, default);
            Assert.NotNull(blob);
            await Assert.ThrowsAsync<MitmCache.Caching.OriginBytesWrongException>(() => ReadAllAsync(blob.Body));
        }

        Assert.False(await ObjectExistsAsync(Engine, layout.BlobKey(digest)), "the poisoned object was deleted");
        Assert.Equal(1, (await world.Proxy.ScrapeMetricsAsync()).Value("mitmcache_blob_store_corrupt_objects_total"));
        using (var again = origin.Capture(context, Target(world), "library/redis", digest))
        {
            Assert.Null(await origin.OpenAsync(digest, 0, again, default));
        }
    }

    [Fact]
    public async Task OpenAsync_PrivateLayerInTheBucket_RefusedToAClientWithoutAGrant_RegistryUpOrDown()
    {
        const string password = "bob-pw-3";
        var prefix = $"origin-private-{Guid.NewGuid():N}";
        var layout = new ObjectLayout(prefix);
        await using var world = await StartPrivateWorldAsync(Engine, prefix, "bob", password, "private/db");
        var image = await world.PushImageAsync("private/db", "v2", (80_000, 14));
        await PullAndUploadAsync(world, image, "private/db:v2", $"bob:{password}");
        var digest = Parse(image.Layers[0].Digest);
        Assert.True(await ObjectExistsAsync(Engine, layout.BlobKey(digest)));
        Assert.False(await ObjectExistsAsync(Engine, layout.PublicLinkKey(world.Authority, "private/db", digest)!), "a private repository's link stays with its instance");

        await using var parent2 = await ProxyUnderTest.StartAsync(WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        var context = new DefaultHttpContext(); // no credentials, no grant
        foreach (var proxy in new[] { world.Proxy, parent2 })
        {
            // Upstream up: it is asked with this client's credentials, and says no.
            var origin = proxy.Get<IBucketBlobOrigin>();
            using var access = origin.Capture(context, Target(world), "private/db", digest);
            Assert.Null(await origin.OpenAsync(digest, 0, access, default));
        }

        await world.KillUpstreamsAsync();
        foreach (var proxy in new[] { world.Proxy, parent2 })
        {
            // Upstream down: nothing lets this client read it offline.
            var origin = proxy.Get<IBucketBlobOrigin>();
            using var access = origin.Capture(context, Target(world), "private/db", digest);
            Assert.Null(await origin.OpenAsync(digest, 0, access, default));
            Assert.Equal(0, (await proxy.ScrapeMetricsAsync()).Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
        }

        Assert.True(await ObjectExistsAsync(Engine, layout.BlobKey(digest)), "refused, not deleted");
    }

    /// <summary>
    /// A hostile registry the parent intercepts claims a private layer of another registry (a HEAD 200 with its digest and
    /// size costs nothing to forge): the bucket's copy is not handed out, and the claim is not even asked for, exactly as
    /// a local copy's bytes are never linked to a repository by an answer about them.
    /// </summary>
    [Fact]
    public async Task OpenAsync_HostileRegistryClaimsAnotherRegistrysPrivateLayer_Refused_WithoutAsking()
    {
        const string password = "dave-pw-9";
        var prefix = $"origin-hostile-{Guid.NewGuid():N}";
        await using var world = await StartPrivateWorldAsync(Engine, prefix, "dave", password, "private/vault");
        var image = await world.PushImageAsync("private/vault", "v1", (70_000, 15));
        await PullAndUploadAsync(world, image, "private/vault:v1", $"dave:{password}");
        var (layer, bytes) = image.Layers[0];
        var digest = Parse(layer);

        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On($"/v2/x/blobs/{layer}", HostileRegistry.Body(new byte[bytes.Length], "application/octet-stream",
            headers: new Dictionary<string, string> { ["Docker-Content-Digest"] = layer }));
        var settings = WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2"));
        await using var parent2 = await ProxyUnderTest.StartAsync(settings with
        {
            Intercept = [.. settings.Intercept, evil.Host],
            AllowedPorts = new HashSet<int>(settings.AllowedPorts) { evil.Port },
            ConnectTo = [.. settings.ConnectTo, new(evil.Host, evil.Port, "127.0.0.1", evil.Port)],
        });
        var origin = parent2.Get<IBucketBlobOrigin>();
        using var access = origin.Capture(new DefaultHttpContext(), new InterceptTarget(evil.Host, evil.Port), "x", digest);

        Assert.Null(await origin.OpenAsync(digest, 0, access, default));
        Assert.DoesNotContain(evil.Requests, r => r.Contains(layer, StringComparison.Ordinal));
        Assert.Equal(0, (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_hits_total", ("kind", "blob")));
    }

    public void Dispose() => _dir.Dispose();
}
