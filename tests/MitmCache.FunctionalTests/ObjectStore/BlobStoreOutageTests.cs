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
        var layout = new ObjectLayout(prefix);
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
        Assert.True(world.Proxy.Get<UploadQueue>().Count >= 1, "the manifest's upload is still queued after the restart");

        // Back, then dead again while the proxy serves: the second pull does not notice.
        await Engine.StartGatewayAsync();
        Assert.True(await Poll.UntilAsync(() => BlobStoreProxyTests.ObjectExistsAsync(Engine, layout.BlobKey(Digest.TryParse(first.ManifestDigest, out var d) ? d : default)),
            TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
        Assert.True(await Poll.UntilAsync(async () => (await ReadyAsync(world.Proxy)).Body == "ready\n", TimeSpan.FromSeconds(20)));
        Engine.KillGateway();
        var again = await Skopeo.CopyToOciAsync($"{registry}/library/redis:8", world.Dir.Combine("oci-2"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(again.Succeeded, again.StdErr);
        Assert.True(await Poll.UntilAsync(async () => (await ReadyAsync(world.Proxy)).Body.Contains("degraded: blob store", StringComparison.Ordinal), TimeSpan.FromSeconds(20)));

        await Engine.StartGatewayAsync();
        Assert.True(await Poll.UntilAsync(() => BlobStoreProxyTests.ObjectExistsAsync(Engine, layout.BlobKey(Digest.TryParse(second.ManifestDigest, out var d) ? d : default)),
            TimeSpan.FromSeconds(30)), world.Proxy.Log.Tail());
        Assert.True(await Poll.UntilAsync(() => world.Proxy.Get<UploadQueue>().Count == 0, TimeSpan.FromSeconds(30)));
        var metrics = await world.Proxy.ScrapeMetricsAsync();
        Assert.True(metrics.Sum("mitmcache_blob_store_errors_total") >= 1);
    }

    private static async Task<(HttpStatusCode Status, string Body)> ReadyAsync(ProxyUnderTest proxy)
    {
        using var http = new HttpClient();
        using var response = await http.GetAsync($"{proxy.Url}/readyz");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
