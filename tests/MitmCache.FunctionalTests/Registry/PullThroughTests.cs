using System.Text.Json;
using Microsoft.AspNetCore.Http;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>
/// Real clients (skopeo, containerd's ctr) pulling through the proxy from the real distribution
/// registry: cold, warm from a fresh client store, and with every upstream dead.
/// </summary>
public sealed class PullThroughTests
{
    [Fact]
    public async Task Skopeo_ColdThenWarm_DigestsMatchAndWarmMakesNoUpstreamBlobRequests()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/app", "v1", (200_000, 1), (50_000, 2));
        var reference = $"{world.Authority}/library/app:v1";

        var cold = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-cold"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(cold.Succeeded, cold.StdErr);
        Assert.Equal(image.ManifestDigest, ReadOciManifestDigest(world.Dir.Combine("oci-cold")));
        await world.Registry.SyncAccessLogAsync();
        var blobGets = world.Registry.CountRequests("GET", "/blobs/");
        Assert.True(blobGets >= 3, $"the cold pull fetched {blobGets} blobs");

        var warm = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-warm"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(warm.Succeeded, warm.StdErr);
        Assert.Equal(image.ManifestDigest, ReadOciManifestDigest(world.Dir.Combine("oci-warm")));

        // Once the proxy has counted the warm pull's blob requests (it does when each response has
        // ended), any upstream GET they caused was answered; the marker then puts it in the log.
        var registry = ("registry", world.Authority);
        double hits = 0;
        await Poll.UntilAsync(async () => (hits = (await world.Proxy.ScrapeMetricsAsync()).Sum("mitmcache_requests_total", registry, ("kind", "blob"), ("result", "hit"))) >= 3,
            TimeSpan.FromSeconds(10));
        Assert.True(hits >= 3, $"expected config and both layers served as hits, saw {hits}");
        await world.Registry.SyncAccessLogAsync();
        Assert.Equal(blobGets, world.Registry.CountRequests("GET", "/blobs/"));
        foreach (var (digest, bytes) in image.Blobs)
        {
            Assert.Equal(bytes, await File.ReadAllBytesAsync(world.Dir.Combine("oci-warm", "blobs", "sha256", Digests.Hex(digest))));
        }
    }

    [Fact]
    public async Task DeadUpstream_DockerHubShape_FreshClientsPullByTagDigestAndEveryPlatform()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/busybox", "1.36", (300_000, 11), (40_000, 12));
        var index = await world.PushIndexAsync("library/multi", "latest", 20);
        var single = $"{world.Authority}/library/busybox:1.36";
        var multi = $"{world.Authority}/library/multi:latest";
        await using var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd"), CancellationToken.None);

        // Online, cold: skopeo pulls everything (all platforms), ctr pulls the single image.
        var warmup = await Skopeo.CopyToOciAsync(multi, world.Dir.Combine("warm-multi"), world.Proxy.Url, world.Proxy.CaBundlePath, null, all: true, CancellationToken.None);
        Assert.True(warmup.Succeeded, warmup.StdErr);
        var warmSingle = await containerd.ContentFetchAsync(single, world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        Assert.True(warmSingle.Succeeded, warmSingle.StdErr + containerd.Output);
        Assert.True(world.Cdn!.RequestCount > 0, "blobs came through the CDN redirect");

        await world.KillUpstreamsAsync();

        // Offline, fresh client stores: by tag, by digest, every platform; ping, token dance and all.
        var byTag = await Skopeo.CopyToOciAsync(single, world.Dir.Combine("off-tag"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(byTag.Succeeded, byTag.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(image.ManifestDigest, ReadOciManifestDigest(world.Dir.Combine("off-tag")));

        var byDigest = await Skopeo.CopyToOciAsync($"{world.Authority}/library/busybox@{image.ManifestDigest}", world.Dir.Combine("off-digest"),
            world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(byDigest.Succeeded, byDigest.StdErr);

        var allPlatforms = await Skopeo.CopyToOciAsync(multi, world.Dir.Combine("off-multi"), world.Proxy.Url, world.Proxy.CaBundlePath, null, all: true, CancellationToken.None);
        Assert.True(allPlatforms.Succeeded, allPlatforms.StdErr);
        Assert.Equal(index.Digest, ReadOciManifestDigest(world.Dir.Combine("off-multi")));

        await using var freshContainerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd-fresh"), CancellationToken.None);
        var ctrMulti = await freshContainerd.ContentFetchAsync(multi, world.Proxy.Url, world.Proxy.CaBundlePath, null, allPlatforms: true, hostsFile: null, CancellationToken.None);
        Assert.True(ctrMulti.Succeeded, ctrMulti.StdErr + "\n" + world.Proxy.Log.Tail());
        var ctrSingle = await freshContainerd.ContentFetchAsync($"{world.Authority}/library/busybox@{image.ManifestDigest}", world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        Assert.True(ctrSingle.Succeeded, ctrSingle.StdErr);
    }

    /// <summary>quay.io (<c>/v2/auth</c>) and gcr.io and Artifact Registry (<c>/v2/token</c>) put the token realm under /v2/.</summary>
    [Theory]
    [InlineData("/v2/auth")]
    [InlineData("/v2/token")]
    public async Task DeadUpstream_TokenRealmUnderV2_FreshClientsStillPull(string tokenPath)
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, tokenPath: tokenPath);
        var image = await world.PushImageAsync("coreos/etcd", "v3.5", (120_000, 41), (30_000, 42));
        var reference = $"{world.Authority}/coreos/etcd:v3.5";
        var online = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("online"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(online.Succeeded, online.StdErr);
        Assert.Contains(world.Tokens!.Log, l => l.StartsWith("- ", StringComparison.Ordinal)); // an anonymous token, from the realm under /v2/

        await world.KillUpstreamsAsync();

        await AssertFreshClientsPullAsync(world, reference, $"{world.Authority}/coreos/etcd", image.ManifestDigest);
    }

    /// <summary>registry.k8s.io's shape: every /v2/ call, the ping included, is a 307 to the registry that serves it.</summary>
    [Fact]
    public async Task DeadUpstream_FrontRedirectingEveryCallLikeRegistryK8sIo_FreshClientsStillPull()
    {
        const string front = "k8s.test";
        var frontPort = FreePort.Get();
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, configure: s => s with
        {
            Intercept = [.. s.Intercept, front],
            AllowedPorts = new HashSet<int>(s.AllowedPorts) { frontPort },
            ConnectTo = [new(front, frontPort, "127.0.0.1", frontPort), .. s.ConnectTo],
        });
        var (frontApp, _) = await LoopbackKestrel.StartAsync(world.Pki.IssueServerCertificate(front), frontPort, context =>
        {
            context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
            context.Response.Headers.Location = $"https://{world.Authority}{context.Request.Path}{context.Request.QueryString}";
            return Task.CompletedTask;
        }, CancellationToken.None);
        var image = await world.PushImageAsync("pause", "3.9", (40_000, 61));
        var reference = $"{front}:{frontPort}/pause:3.9";
        var online = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("online"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(online.Succeeded, online.StdErr + "\n" + world.Proxy.Log.Tail());

        await frontApp.StopAsync();
        await frontApp.DisposeAsync();
        await world.KillUpstreamsAsync();

        await AssertFreshClientsPullAsync(world, reference, $"{front}:{frontPort}/pause", image.ManifestDigest);
    }

    /// <summary>containerd never pings /v2/: the proxy learns the token realm from a manifest's 401 only.</summary>
    [Fact]
    public async Task DeadUpstream_OnlyContainerdEverPulled_FreshContainerdStillPulls()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/ctronly", "v1", (90_000, 51), (20_000, 52));
        var reference = $"{world.Authority}/library/ctronly:v1";
        world.Registry.ClearAccessLog();
        await using (var online = await ContainerdServer.StartAsync(world.Dir.Combine("containerd-online"), CancellationToken.None))
        {
            var fetch = await online.ContentFetchAsync(reference, world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
            Assert.True(fetch.Succeeded, fetch.StdErr);
        }

        Assert.DoesNotContain(world.Registry.AccessLog, r => r.Target == "/v2/"); // containerd never pinged
        await world.KillUpstreamsAsync();

        await using var fresh = await ContainerdServer.StartAsync(world.Dir.Combine("containerd-offline"), CancellationToken.None);
        var byTag = await fresh.ContentFetchAsync(reference, world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        Assert.True(byTag.Succeeded, byTag.StdErr + "\n" + world.Proxy.Log.Tail());
        var byDigest = await fresh.ContentFetchAsync($"{world.Authority}/library/ctronly@{image.ManifestDigest}", world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        Assert.True(byDigest.Succeeded, byDigest.StdErr + "\n" + world.Proxy.Log.Tail());
    }

    [Fact]
    public async Task DeadUpstream_NeverPulledImage_FailsCleanly()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        await world.PushImageAsync("library/seen", "v1", (10_000, 31));
        await world.PushImageAsync("library/unseen", "v1", (10_000, 32));
        var seen = await Skopeo.CopyToOciAsync($"{world.Authority}/library/seen:v1", world.Dir.Combine("seen"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(seen.Succeeded, seen.StdErr);

        await world.KillUpstreamsAsync();
        var unseen = await Skopeo.CopyToOciAsync($"{world.Authority}/library/unseen:v1", world.Dir.Combine("unseen"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);

        Assert.False(unseen.Succeeded);
        await AssertProxyHealthyAsync(world);
    }

    /// <summary>A fresh skopeo pulls <paramref name="tagReference"/> and a fresh containerd the same image by digest.</summary>
    private static async Task AssertFreshClientsPullAsync(RegistryWorld world, string tagReference, string repository, string manifestDigest)
    {
        var byTag = await Skopeo.CopyToOciAsync(tagReference, world.Dir.Combine("off-tag"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(byTag.Succeeded, byTag.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(manifestDigest, ReadOciManifestDigest(world.Dir.Combine("off-tag")));
        await using var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd"), CancellationToken.None);
        var ctr = await containerd.ContentFetchAsync($"{repository}@{manifestDigest}", world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        Assert.True(ctr.Succeeded, ctr.StdErr + "\n" + world.Proxy.Log.Tail());
    }

    internal static string ReadOciManifestDigest(string ociDir)
    {
        using var index = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ociDir, "index.json")));
        return index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
    }

    internal static async Task AssertProxyHealthyAsync(RegistryWorld world)
    {
        using var http = new HttpClient();
        Assert.Equal("ok\n", await http.GetStringAsync($"{world.Proxy.Url}/healthz"));
    }
}
