using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>The Docker daemon, which cannot mirror anything but Docker Hub, pulling through the proxy.</summary>
public sealed class DockerPullTests
{
    [Fact]
    public async Task Dockerd_ColdOnline_ThenFreshDaemonWithEverythingDead_PullsByTagAndDigest()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/dockerized", "v1", (200_000, 81), (30_000, 82));
        var reference = $"{world.Authority}/library/dockerized:v1";
        var environment = new Dictionary<string, string?>
        {
            ["HTTPS_PROXY"] = world.Proxy.Url,
            ["SSL_CERT_FILE"] = world.Proxy.CaBundlePath,
        };

        await using (var online = await DockerDaemon.StartAsync(world.Dir.Combine("docker-online"), environment, CancellationToken.None))
        {
            var pull = await online.PullAsync(reference, CancellationToken.None);
            Assert.True(pull.Succeeded, pull.StdOut + pull.StdErr + "\n" + world.Proxy.Log.Tail());
            Assert.Contains(image.ManifestDigest, pull.StdOut, StringComparison.Ordinal);
        }

        await world.KillUpstreamsAsync();

        await using var offline = await DockerDaemon.StartAsync(world.Dir.Combine("docker-offline"), environment, CancellationToken.None);
        var byTag = await offline.PullAsync(reference, CancellationToken.None);
        Assert.True(byTag.Succeeded, byTag.StdOut + byTag.StdErr + "\n" + world.Proxy.Log.Tail());
        var byDigest = await offline.PullAsync($"{world.Authority}/library/dockerized@{image.ManifestDigest}", CancellationToken.None);
        Assert.True(byDigest.Succeeded, byDigest.StdOut + byDigest.StdErr);
        var inspect = await offline.RunAsync(["image", "inspect", "--format", "{{.Id}}", reference], CancellationToken.None);
        Assert.Equal(image.ConfigDigest, inspect.StdOut.Trim());
    }
}
