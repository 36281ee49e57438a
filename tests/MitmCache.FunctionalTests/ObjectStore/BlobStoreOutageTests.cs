using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.ObjectStore;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// The engine dead under a running proxy: every pull succeeds from upstream, <c>/readyz</c> stays 200 and says degraded,
/// uploads wait in the persisted queue through a proxy restart, and go out once the engine is back.
/// </summary>
[Collection(CephFailureCollection.Name)]
public sealed class BlobStoreOutageTests(CephEngineFixture fixture) : GatewayTests(fixture, "s3-outage")
{
    [Fact]
    public async Task EngineDeadBeforeStartAndWhileServing_PullsSucceed_ReadyzDegraded_QueueSurvivesARestart_UploadsResume()
    {
        var prefix = $"outage-{Guid.NewGuid():N}";
        Engine.KillGateway();
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => BlobStoreProxyTests.WithBlobStore(s, Engine, prefix));
        var first = await world.PushImageAsync("library/redis", "7", (150_000, 5), (20_000, 6));
        var second = await world.PushImageAsync("library/redis", "8", (160_000, 7));
        var registry = world.Authority;

        // Dead before start-up: the pull succeeds, and /readyz stays ready but says why the tier is skipped.
        var pull = await Skopeo.CopyToOciAsync($"{registry}/library/redis:7", world.Dir.Combine("oci-1"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
        Assert.True(await Poll.UntilAsync(async () => (await ReadyAsync(world.Proxy)).Body.Contains("degraded: blob store", StringComparison.Ordinal), TimeSpan.FromSeconds(20)),
            world.Proxy.Log.Tail());
        var (status, _) = await ReadyAsync(world.Proxy);
        Assert.Equal(HttpStatusCode.OK, status);

        // A restart with the engine still dead: the queue is in the index.
        await world.Proxy.RestartAsync();
        Assert.Equal(first.Blobs.Count() + 1, world.Proxy.Get<UploadQueue>().Count); // the layers, the config and the manifest

        // Back, then dead again while the proxy serves: the second pull does not notice.
        await Engine.StartGatewayAsync();
        Assert.True(await Poll.UntilAsync(() => AllUploadedAsync(prefix, first), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
        Assert.True(await Poll.UntilAsync(async () => (await ReadyAsync(world.Proxy)).Body == "ready\n", TimeSpan.FromSeconds(20)));
        Engine.KillGateway();
        var again = await Skopeo.CopyToOciAsync($"{registry}/library/redis:8", world.Dir.Combine("oci-2"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(again.Succeeded, again.StdErr);
        Assert.True(await Poll.UntilAsync(async () => (await ReadyAsync(world.Proxy)).Body.Contains("degraded: blob store", StringComparison.Ordinal), TimeSpan.FromSeconds(20)));

        await Engine.StartGatewayAsync();
        Assert.True(await Poll.UntilAsync(() => AllUploadedAsync(prefix, second), TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
        Assert.True(await Poll.UntilAsync(() => world.Proxy.Get<UploadQueue>().Count == 0, TimeSpan.FromSeconds(30)));
        var metrics = await world.Proxy.ScrapeMetricsAsync();
        Assert.True(metrics.Sum("mitmcache_blob_store_errors_total") >= 1);
    }

    /// <summary>
    /// A fresh parent pulling an image whose layers are in the bucket, the engine killed once the parent has read a
    /// megabyte from it: the fill goes on from the registry with a Range from where it got to (<see cref="ResumingReadStream"/>),
    /// the pull succeeds, <c>/readyz</c> says degraded, and nothing is lost.
    /// </summary>
    [Fact]
    public async Task EngineKilledWhileAFreshParentReadsALayer_ThePullSucceedsFromTheRegistry_ReadyzDegraded()
    {
        var prefix = $"mid-pull-{Guid.NewGuid():N}";
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => BlobStoreProxyTests.WithBlobStore(s, Engine, prefix));
        var image = await world.PushImageAsync("library/mongo", "7", (48_000_000, 26), (50_000, 27));
        var registry = world.Authority;
        var pull = await Skopeo.CopyToOciAsync($"{registry}/library/mongo:7", world.Dir.Combine("oci-1"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
        Assert.True(await Poll.UntilAsync(() => BlobStoreProxyTests.UploadedAsync(world.Proxy, image.Blobs.Count() + 1), TimeSpan.FromSeconds(60)), world.Proxy.Log.Tail());

        await using var parent2 = await ProxyUnderTest.StartAsync(BlobStoreProxyTests.WithBlobStore(world.DefaultProxySettings(), Engine, prefix, world.Dir.Combine("parent2")));
        var pulling = Skopeo.CopyToOciAsync($"{registry}/library/mongo:7", world.Dir.Combine("oci-2"), parent2.Url, parent2.CaBundlePath, null, false, CancellationToken.None);
        double downloaded = 0;
        Assert.True(await Poll.UntilAsync(async () => pulling.IsCompleted
            || (downloaded = (await parent2.ScrapeMetricsAsync()).Value("mitmcache_blob_store_bytes_total", ("direction", "download"))) > 1_000_000, TimeSpan.FromSeconds(60))); // within the big layer: the others are small
        Engine.KillGateway();
        var result = await pulling;

        Assert.True(result.Succeeded, result.StdErr + parent2.Log.Tail());
        if (downloaded < image.Layers[0].Bytes.Length)
        {
            // Killed in the middle of the big layer's body (the usual case): its rest came from upstream.
            Assert.Contains(parent2.Log.Lines, l => l.Contains("from the blob store broke off", StringComparison.Ordinal));
        }
        Assert.True(await Poll.UntilAsync(async () => (await ReadyAsync(parent2)).Body.Contains("degraded: blob store", StringComparison.Ordinal), TimeSpan.FromSeconds(20)));
        Assert.Equal(HttpStatusCode.OK, (await ReadyAsync(parent2)).Status);
        await Engine.StartGatewayAsync();
        Assert.True(await Poll.UntilAsync(() => AllUploadedAsync(prefix, image), TimeSpan.FromSeconds(30)), parent2.Log.Tail());
    }

    /// <summary>Whether the image's manifest, config and every layer are in the bucket: nothing lost.</summary>
    private async Task<bool> AllUploadedAsync(string prefix, BuiltImage image) =>
        (await Task.WhenAll(image.Blobs.Select(b => b.Digest).Append(image.ManifestDigest)
            .Select(d => BlobStoreProxyTests.ObjectExistsAsync(Engine, BlobStoreProxyTests.BlobKeyByHand(prefix, d))))).All(e => e);

    private static async Task<(HttpStatusCode Status, string Body)> ReadyAsync(ProxyUnderTest proxy)
    {
        using var http = new HttpClient();
        using var response = await http.GetAsync($"{proxy.Url}/readyz");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
