using MitmCache.Caching;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.FunctionalTests.Registry;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Cli;

/// <summary>
/// <c>mitmcache prefetch</c>, the real executable, pulling through the in-process proxy from the real registry
/// in the Docker Hub shape (token server, blobs redirected to a CDN).
/// </summary>
public sealed class PrefetchTests
{
    [Fact]
    public async Task Prefetch_ImageAndMultiArchIndex_ThenEveryUpstreamDead_SkopeoPullsFromCache()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/app", "v1", (400_000, 101), (60_000, 102));
        var index = await world.PushIndexAsync("library/multi", "latest", 110);
        var single = $"{world.Authority}/library/app:v1";
        var multi = $"{world.Authority}/library/multi:latest";

        var run = await MitmCacheCli.RunAsync("prefetch", single, multi, "--platform", "all", "--proxy", world.Proxy.Url, "--progress", "plain");

        Assert.True(run.Succeeded, run.ToString());
        Assert.Contains($"ok {single} {image.ManifestDigest} (1 manifest, 3 blobs,", run.StdOut, StringComparison.Ordinal);
        Assert.Contains($"ok {multi} {index.Digest} (3 manifests, 6 blobs,", run.StdOut, StringComparison.Ordinal);
        Assert.Matches($@"(?m)^  blob     {image.Layers[0].Digest} \d+\.\d KiB miss$", run.StdOut);
        Assert.True(world.Cdn!.RequestCount > 0, "blobs came through the CDN redirect, followed by the proxy");
        var cache = world.Proxy.Get<BlobCache>();
        await cache.FillsEnded(); // the commit follows the client's last byte
        var expected = image.Blobs.Select(b => b.Digest).Append(image.ManifestDigest).Append(index.Digest)
            .Concat(index.Platforms.SelectMany(p => p.Blobs.Select(b => b.Digest).Append(p.ManifestDigest)))
            .ToList();
        foreach (var digest in expected)
        {
            Assert.True(Digest.TryParse(digest, out var parsed) && cache.TryGet(parsed) is not null, $"{digest} is not cached");
        }

        await world.KillUpstreamsAsync();

        var byTag = await Skopeo.CopyToOciAsync(single, world.Dir.Combine("off-single"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(byTag.Succeeded, byTag.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(image.ManifestDigest, PullThroughTests.ReadOciManifestDigest(world.Dir.Combine("off-single")));
        var everyPlatform = await Skopeo.CopyToOciAsync(multi, world.Dir.Combine("off-multi"), world.Proxy.Url, world.Proxy.CaBundlePath, null, all: true, CancellationToken.None);
        Assert.True(everyPlatform.Succeeded, everyPlatform.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(index.Digest, PullThroughTests.ReadOciManifestDigest(world.Dir.Combine("off-multi")));

        // Prefetching again with the upstreams dead is answered by the cache alone (progress bars forced on).
        var again = await MitmCacheCli.RunAsync("prefetch", multi, "--platform", "linux/arm64", "--proxy", world.Proxy.Url, "--progress", "tty");
        Assert.True(again.Succeeded, again.ToString());
        Assert.Contains("\e[2K", again.StdOut, StringComparison.Ordinal);
        Assert.Contains($"ok {multi} {index.Digest} (2 manifests, 3 blobs,", again.StdOut, StringComparison.Ordinal);
        Assert.Contains("(hit)", again.StdOut, StringComparison.Ordinal);
        Assert.DoesNotContain("(miss)", again.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prefetch_ListFileWithCredentials_CachesGoodImagesAndExitsNonZeroForTheBadOne()
    {
        const string user = "alice";
        const string password = "alice-secret-pw";
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, users: new Dictionary<string, string> { [user] = password },
            acl: (who, repository, requested) => repository.StartsWith("team/", StringComparison.Ordinal) && who is not (user or TokenServer.AdminUser)
                ? []
                : TokenServer.DefaultAcl(who == user ? null : who, repository, requested));
        var team = await world.PushImageAsync("team/app", "v1", (80_000, 121));
        var open = await world.PushImageAsync("library/pub", "v1", (30_000, 122));
        var list = world.Dir.Combine("images.txt");
        await File.WriteAllTextAsync(list, $"""
            # images for the CI warm-up

            {world.Authority}/team/app:v1
            {world.Authority}/library/pub@{open.ManifestDigest}   # pinned
            {world.Authority}/library/missing:v1
            """);

        var run = await MitmCacheCli.RunAsync(["prefetch", "--file", list, "--proxy", world.Proxy.Url],
            new Dictionary<string, string?> { ["MITMCACHE_PREFETCH_CREDS"] = $"{user}:{password}" });

        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"ok {world.Authority}/team/app:v1 {team.ManifestDigest}", run.StdOut, StringComparison.Ordinal);
        Assert.Contains($"ok {world.Authority}/library/pub@{open.ManifestDigest}", run.StdOut, StringComparison.Ordinal);
        Assert.Contains($"FAILED {world.Authority}/library/missing:v1: manifest v1 not found", run.StdOut, StringComparison.Ordinal);
        Assert.Contains("1 of 3 images failed", run.StdErr, StringComparison.Ordinal);
        Assert.Contains($"{user} repository:team/app:pull", world.Tokens!.Log);
        var cache = world.Proxy.Get<BlobCache>();
        await cache.FillsEnded(); // the commit follows the client's last byte
        Assert.All(team.Blobs, b => Assert.True(Digest.TryParse(b.Digest, out var d) && cache.TryGet(d) is not null));
        Assert.DoesNotContain(password, run.StdOut + run.StdErr, StringComparison.Ordinal);

        // Without credentials the private repository is refused, and the message says what to do.
        var anonymous = await MitmCacheCli.RunAsync("prefetch", $"{world.Authority}/team/app:v1", "--proxy", world.Proxy.Url);
        Assert.Equal(1, anonymous.ExitCode);
        Assert.Contains("give --creds", anonymous.StdOut, StringComparison.Ordinal);

        // Usage errors are reported before anything is fetched.
        var usage = await MitmCacheCli.RunAsync("prefetch", "Not An Image", "--platform", "linux", "--proxy", world.Proxy.Url);
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("not a valid repository name", usage.StdErr, StringComparison.Ordinal);
        Assert.Contains("--platform: 'linux' is not a platform", usage.StdErr, StringComparison.Ordinal);
    }
}
