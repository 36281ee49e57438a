using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>podman, configured only with HTTPS_PROXY and the proxy's root, pulling through the proxy.</summary>
public sealed class PodmanPullTests
{
    [Fact]
    public async Task Podman_ColdOnline_ThenFreshStoreWithEverythingDead_PullsByTagAndDigest()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/podded", "v1", (180_000, 91), (25_000, 92));
        var reference = $"{world.Authority}/library/podded:v1";

        var online = new Podman(world.Dir.Combine("podman-online"));
        var cold = await online.PullAsync(reference, world.Proxy.Url, world.Proxy.CaBundlePath, CancellationToken.None);
        Assert.True(cold.Succeeded, cold + "\n" + world.Proxy.Log.Tail());

        await world.KillUpstreamsAsync();

        var offline = new Podman(world.Dir.Combine("podman-offline"));
        var byTag = await offline.PullAsync(reference, world.Proxy.Url, world.Proxy.CaBundlePath, CancellationToken.None);
        Assert.True(byTag.Succeeded, byTag + "\n" + world.Proxy.Log.Tail());
        var byDigest = await offline.PullAsync($"{world.Authority}/library/podded@{image.ManifestDigest}", world.Proxy.Url, world.Proxy.CaBundlePath, CancellationToken.None);
        Assert.True(byDigest.Succeeded, byDigest.ToString());
        var id = await offline.InspectAsync(reference, "{{.Id}}", CancellationToken.None);
        Assert.Equal(Digests.Hex(image.ConfigDigest), id.StdOut.Trim());
        Assert.True(await world.Proxy.Log.WaitForAsync(l => l.Contains("\"Result\":\"stale\"", StringComparison.Ordinal) || l.Contains("\"Result\":\"hit\"", StringComparison.Ordinal)), world.Proxy.Log.Tail());
    }
}
