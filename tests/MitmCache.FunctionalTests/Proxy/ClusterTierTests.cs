using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Proxy;

/// <summary>
/// The cluster tier (docs/cluster.md) with every instance a real MitmCache process: three parents sharing one CA,
/// children listing all three, the Debian registry with token auth and its CDN redirect behind them.
/// </summary>
public sealed class ClusterTierTests
{
    private static async Task<ProcessResult> PullAsync(RegistryWorld world, ProxyProcess child, string image, string dir, string? creds = null) =>
        await Skopeo.CopyToOciAsync($"{world.Authority}/{image}", world.Dir.Combine(dir), child.Url, child.CaBundlePath, creds, false, CancellationToken.None);

    private static string Describe(ClusterTier tier, params ProxyProcess[] children) =>
        string.Join("\n----\n", children.Concat(tier.Parents).Select(p => $"{p.Url}:\n{Tail(p.Output)}"));

    private static string Tail(string output) => output.Length > 20000 ? output[^20000..] : output;

    [Fact]
    public async Task TwoChildrenPullTogether_EachBlobFetchedOnceAndCachedOnlyOnItsOwner_AFreshChildFetchesNone()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/tiered", "v1", (400_000, 1), (300_000, 2), (200_000, 3), (100_000, 4), (50_000, 5));
        using var tier = await ClusterTier.StartAsync(world);
        var a = await tier.StartChildAsync("child-a");
        var b = await tier.StartChildAsync("child-b");

        var pulls = await Task.WhenAll(PullAsync(world, a, "library/tiered:v1", "oci-a"), PullAsync(world, b, "library/tiered:v1", "oci-b"));

        Assert.All(pulls, p => Assert.True(p.Succeeded, p.StdErr + "\n" + Describe(tier, a, b)));
        await world.Registry.SyncAccessLogAsync();
        foreach (var (digest, _) in image.Blobs)
        {
            Assert.Equal(1, world.Registry.CountRequests("GET", $"/blobs/{digest}"));
            var owner = tier.Owner("blob " + digest);
            Assert.True(ClusterTier.Holds(owner, digest), $"{digest} is not on its owner {owner.Url}");
            Assert.All(tier.Parents.Where(p => p != owner), p => Assert.False(ClusterTier.Holds(p, digest), $"{digest} is also on {p.Url}"));
        }

        var fresh = await tier.StartChildAsync("child-c");
        world.Registry.ClearAccessLog();
        var again = await PullAsync(world, fresh, "library/tiered:v1", "oci-c");

        Assert.True(again.Succeeded, again.StdErr + "\n" + Describe(tier, fresh));
        await world.Registry.SyncAccessLogAsync();
        Assert.Equal(0, world.Registry.CountRequests("GET", "/blobs/"));
    }

    /// <summary>Eight clients on each of two children (six skopeo, two ctr), all at once on a cold image: still one registry GET per blob.</summary>
    [Fact]
    public async Task EightClientsOnEachOfTwoChildren_ColdImageAtOnce_OneRegistryGetPerBlob()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/crowd", "v1", (500_000, 71), (250_000, 72), (120_000, 73), (60_000, 74));
        using var tier = await ClusterTier.StartAsync(world);
        var children = new[] { await tier.StartChildAsync("child-a"), await tier.StartChildAsync("child-b") };
        var reference = $"{world.Authority}/library/crowd:v1";
        var containerds = new List<ContainerdServer>();
        try
        {
            var pulls = new List<Task<ProcessResult>>();
            for (var c = 0; c < children.Length; c++)
            {
                for (var i = 0; i < 2; i++)
                {
                    containerds.Add(await ContainerdServer.StartAsync(world.Dir.Combine($"containerd-{c}-{i}"), CancellationToken.None));
                }
            }

            for (var c = 0; c < children.Length; c++)
            {
                var child = children[c];
                pulls.AddRange(Enumerable.Range(0, 6).Select(i => PullAsync(world, child, "library/crowd:v1", $"oci-{c}-{i}")));
                pulls.AddRange(containerds.Skip(2 * c).Take(2).Select(d => d.ContentFetchAsync(reference, child.Url, child.CaBundlePath, null, CancellationToken.None)));
            }

            var results = await Task.WhenAll(pulls);

            Assert.All(results, r => Assert.True(r.Succeeded, r.StdErr + "\n" + Describe(tier, children)));
        }
        finally
        {
            foreach (var containerd in containerds)
            {
                await containerd.DisposeAsync();
            }
        }

        await world.Registry.SyncAccessLogAsync();
        // A GET the registry refused with its challenge (a client starting the token dance; ctr does, for the config blob) fetched nothing.
        var fetches = image.Blobs.Select(b => (b.Digest, Count: world.Registry.AccessLog.Count(e =>
            e.Method == "GET" && e.Target.Contains($"/blobs/{b.Digest}", StringComparison.Ordinal) && e.Status != 401))).ToList();
        Assert.True(fetches.All(g => g.Count == 1), string.Join("\n", fetches) + "\n" + Describe(tier, children));
    }

    [Fact]
    public async Task OwnerOfTheLargestLayerKilled_NextParentServesIt_AndOnceRestartedItsKeysReturnToIt()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/failover", "v1", (600_000, 11), (100_000, 12), (50_000, 13));
        using var tier = await ClusterTier.StartAsync(world);
        var child = await tier.StartChildAsync("child-a");
        var largest = image.Layers[0].Digest;
        var ranked = tier.Ranked("blob " + largest);
        var ownerIndex = tier.Parents.IndexOf(ranked[0]);

        ranked[0].Kill();
        var pull = await PullAsync(world, child, "library/failover:v1", "oci-a");

        Assert.True(pull.Succeeded, pull.StdErr + "\n" + Describe(tier, child));
        Assert.True(ClusterTier.Holds(ranked[1], largest), "the runner-up parent did not serve the layer");
        await world.Registry.SyncAccessLogAsync();
        Assert.Equal(1, world.Registry.CountRequests("GET", $"/blobs/{largest}"));
        using var http = new HttpClient();
        var ready = await http.GetStringAsync($"{child.Url}/readyz");
        Assert.Contains($"parent 127.0.0.1:{ranked[0].Port} down", ready, StringComparison.Ordinal);

        // Back: once its /readyz answers the child's probe, the digests it owns go to it again.
        await tier.RestartParentAsync(ownerIndex);
        await Poll.UntilAsync(async () => !(await http.GetStringAsync($"{child.Url}/readyz")).Contains("parent 127.0.0.1", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var seed = 100;
        string[] owned;
        do
        {
            owned = [.. new OciImageBuilder().AddLayer(70_000, ++seed).Build().Layers.Select(l => l.Digest)];
        }
        while (tier.Owner("blob " + owned[0]) != tier.Parents[ownerIndex]);

        var back = await world.PushImageAsync("library/back", "v1", (70_000, seed));
        var second = await PullAsync(world, child, "library/back:v1", "oci-back");

        Assert.True(second.Succeeded, second.StdErr + "\n" + Describe(tier, child));
        Assert.True(ClusterTier.Holds(tier.Parents[ownerIndex], back.Layers[0].Digest), "the restarted owner did not get its key back");
    }

    /// <summary>
    /// The owner dies mid-body: the CDN holds the owner's fetch of the largest layer after its first 3 MB, the owner
    /// streams them to the child, and once the child has read some of them the owner gets kill -9. The child asks the
    /// runner-up for the rest with a Range; the pull sees one body and its digest checks.
    /// </summary>
    [Fact]
    public async Task OwnerKilledMidwayThroughTheLargestLayer_TheRestComesByRangeFromTheNextParent_ThePullCompletes()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/midway", "v1", (8_000_000, 41), (60_000, 42));
        using var tier = await ClusterTier.StartAsync(world);
        var child = await tier.StartChildAsync("child-a");
        var largest = image.Layers[0].Digest;
        var ranked = tier.Ranked("blob " + largest);
        var hold = world.Cdn!.HoldNext(largest["sha256:".Length..], 3_000_000);
        using var http = new HttpClient();
        var owner = ("parent", $"127.0.0.1:{ranked[0].Port}");
        var runnerUp = ("parent", $"127.0.0.1:{ranked[1].Port}");

        var pull = PullAsync(world, child, "library/midway:v1", "oci-a");
        await hold.Reached.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(await Poll.UntilAsync(async () => (await ScrapeAsync(http, child)).Value("mitmcache_parent_bytes_total", owner) >= 1_000_000, TimeSpan.FromSeconds(30)),
            "the child did not get the first bytes of the layer from its owner\n" + Describe(tier, child));
        ranked[0].Kill();
        hold.Release();
        var pulled = await pull;

        Assert.True(pulled.Succeeded, pulled.StdErr + "\n" + Describe(tier, child));
        Assert.True(ClusterTier.Holds(child, largest), "the child did not commit the layer (its digest check covers the whole blob)");
        Assert.True(ClusterTier.Holds(ranked[1], largest), "the runner-up did not serve the rest");
        var resumed = child.Output.Split('\n').Single(l => l.Contains("\"ParentBodyResuming\"", StringComparison.Ordinal));
        Assert.Contains(largest, resumed, StringComparison.Ordinal);
        Assert.Contains($"\"Next\":\"parent {runnerUp.Item2}\"", resumed, StringComparison.Ordinal);
        var reached = long.Parse(System.Text.RegularExpressions.Regex.Match(resumed, "\"Bytes\":(\\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(reached, 1_000_000, 3_000_000);
        Assert.True(await Poll.UntilAsync(async () => (await ScrapeAsync(http, child)).Value("mitmcache_parent_up", owner) == 0, TimeSpan.FromSeconds(30)),
            "the owner was not marked down after its body broke (a fresh check of its /readyz)");
        var metrics = await ScrapeAsync(http, child);
        Assert.True(metrics.Value("mitmcache_parent_failures_total", owner) >= 1);
        Assert.Equal(1, metrics.Value("mitmcache_parent_up", runnerUp));
    }

    private static async Task<PrometheusText> ScrapeAsync(HttpClient http, ProxyProcess proxy) =>
        PrometheusText.Parse(await http.GetStringAsync($"{proxy.Url}/metrics"));

    /// <summary>
    /// Offline across the tier: the registry, its token server and its CDN dead, one parent left alive (the other two
    /// dead from the start, so the cluster pulled through it): a fresh child pulls every image the cluster pulled, by
    /// tag and by digest, with skopeo and ctr: the <c>/v2/</c> ping, the token dance (a local token) and every manifest
    /// and blob from that parent.
    /// </summary>
    [Fact]
    public Task UpstreamsDeadOneParentLeft_AFreshChildPullsEveryImageTheClusterPulled_ByTagAndDigest_WithSkopeoAndCtr() =>
        PullOfflineThroughTheTierAsync(parentsAlive: 1);

    /// <summary>
    /// The same with every parent alive: each repository's token and manifests come from its owner, each blob from the
    /// blob's owner, another parent, which never saw the token dance. The local token its peer minted means nothing to
    /// it; it serves the blob because it learned for itself, while the registry was up, that the repository is public.
    /// </summary>
    [Fact]
    public Task UpstreamsDeadEveryParentAlive_AFreshChildPullsEveryImageTheClusterPulled_ByTagAndDigest_WithSkopeoAndCtr() =>
        PullOfflineThroughTheTierAsync(parentsAlive: 3);

    private static async Task PullOfflineThroughTheTierAsync(int parentsAlive)
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var app = await world.PushImageAsync("library/offline-app", "v1", (300_000, 51), (120_000, 52), (40_000, 53));
        var multi = await world.PushIndexAsync("library/offline-multi", "v2", 60);
        using var tier = await ClusterTier.StartAsync(world);
        foreach (var parent in tier.Parents.Skip(parentsAlive))
        {
            parent.Kill();
        }

        var a = await tier.StartChildAsync("child-a");
        var b = await tier.StartChildAsync("child-b");
        string[] references =
        [
            $"{world.Authority}/library/offline-app:v1", $"{world.Authority}/library/offline-app@{app.ManifestDigest}",
            $"{world.Authority}/library/offline-multi:v2", $"{world.Authority}/library/offline-multi@{multi.Digest}",
        ];

        var online = await PullAsync(world, a, "library/offline-app:v1", "oci-online");
        Assert.True(online.Succeeded, online.StdErr + "\n" + Describe(tier, a));
        await using (var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd-online"), CancellationToken.None))
        {
            var fetched = await containerd.ContentFetchAsync(references[2], b.Url, b.CaBundlePath, null, CancellationToken.None);
            Assert.True(fetched.Succeeded, fetched.StdErr + "\n" + Describe(tier, b));
        }

        await world.KillUpstreamsAsync();
        var fresh = await tier.StartChildAsync("child-fresh");

        for (var i = 0; i < references.Length; i++)
        {
            var copied = await Skopeo.CopyToOciAsync(references[i], world.Dir.Combine($"oci-offline-{i}"), fresh.Url, fresh.CaBundlePath, null, false, CancellationToken.None);
            Assert.True(copied.Succeeded, $"skopeo {references[i]}: {copied.StdErr}\n{Describe(tier, fresh)}");
            await using var containerd = await ContainerdServer.StartAsync(world.Dir.Combine($"containerd-offline-{i}"), CancellationToken.None);
            var fetched = await containerd.ContentFetchAsync(references[i], fresh.Url, fresh.CaBundlePath, null, CancellationToken.None);
            Assert.True(fetched.Succeeded, $"ctr {references[i]}: {fetched.StdErr}\n{Describe(tier, fresh)}");
        }
    }

    [Fact]
    public async Task AllParentsDown_PullsGoDirect_AndWithoutDirectFallbackFailNamingTheParents()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        await world.PushImageAsync("library/alone", "v1", (80_000, 21), (40_000, 22));
        using var tier = await ClusterTier.StartAsync(world);
        var open = await tier.StartChildAsync("child-open");
        var closed = await tier.StartChildAsync("child-closed", "--no-direct-fallback");
        foreach (var parent in tier.Parents)
        {
            parent.Kill();
        }

        var direct = await PullAsync(world, open, "library/alone:v1", "oci-open");
        var refused = await PullAsync(world, closed, "library/alone:v1", "oci-closed");
        using var client = ProxyClients.Create(closed.Url, closed.CaBundlePath);
        using var answer = await client.GetAsync($"https://{world.Authority}/v2/library/alone/manifests/v1");
        var body = await answer.Content.ReadAsStringAsync();

        Assert.True(direct.Succeeded, direct.StdErr + "\n" + Describe(tier, open));
        Assert.False(refused.Succeeded);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.StatusCode);
        Assert.All(tier.Parents, p => Assert.True(body.Contains($"127.0.0.1:{p.Port}", StringComparison.Ordinal), body));
        Assert.Contains("--no-direct-fallback", body, StringComparison.Ordinal);
    }

    /// <summary>A parent that relays a registry's 503 gives the registry's answer: no other parent and no direct request is tried.</summary>
    [Fact]
    public async Task ParentRelaysAnUpstream503_TheChildTakesItAsTheAnswer_NoOtherRouteAsked()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        await using var sick = await HostileRegistry.StartAsync(world.Pki, "sick.test");
        var digest = "sha256:" + new string('5', 64);
        sick.On("/v2/x/blobs/", context =>
            {
                context.Response.StatusCode = 503;
                context.Response.Headers[MitmCache.Upstream.ParentTier.RelayedHeader] = "forged"; // a registry cannot mark its answer
                return Task.CompletedTask;
            })
            .On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        string[] reachSick = ["--intercept", sick.Host, "--allow-port", $"{sick.Port}", "--connect-to", $"{sick.Host}:{sick.Port}:127.0.0.1:{sick.Port}"];
        using var tier = await ClusterTier.StartAsync(world, parentArguments: _ => reachSick);
        var child = await tier.StartChildAsync("child-a", reachSick);

        using var client = ProxyClients.Create(child.Url, child.CaBundlePath);
        using var answer = await client.GetAsync($"https://{sick.Authority}/v2/x/blobs/{digest}");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.StatusCode);
        Assert.Single(sick.Requests, r => r.Contains("/blobs/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task PrivateImageThroughTheTier_OnlyTheGrantedUserGetsIt_OnlineAndWithTheRegistryDead()
    {
        const string alicePassword = "alice-Tier-1";
        const string bobPassword = "bob-Tier-2";
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true,
            acl: (user, repository, requested) => (user, repository) switch
            {
                (TokenServer.AdminUser, _) => requested,
                ("alice", "private/app") => [.. requested.Where(a => a == "pull")],
                _ => [],
            },
            users: new Dictionary<string, string> { ["alice"] = alicePassword, ["bob"] = bobPassword });
        var app = await world.PushImageAsync("private/app", "v1", (90_000, 31), (30_000, 32));
        using var tier = await ClusterTier.StartAsync(world);
        var a = await tier.StartChildAsync("child-a");
        var b = await tier.StartChildAsync("child-b");
        var alice = $"alice:{alicePassword}";

        var granted = await PullAsync(world, a, "private/app:v1", "oci-alice", alice);
        Assert.True(granted.Succeeded, granted.StdErr + "\n" + Describe(tier, a));
        foreach (var (child, creds, dir) in new[] { (b, $"bob:{bobPassword}", "oci-bob"), (b, null, "oci-anon"), (b, $"alice:wrong-{alicePassword}", "oci-wrong"), (a, $"bob:{bobPassword}", "oci-bob-a") })
        {
            var refused = await PullAsync(world, child, "private/app:v1", dir, creds);
            Assert.False(refused.Succeeded, $"{creds ?? "anonymous"} pulled private/app through {child.Url}");
        }

        await world.KillUpstreamsAsync();

        // Alice offline: through the child she pulled with, through the other child, and through a fresh one; every parent
        // alive, so the token and manifests come from the repository's owner and each blob from its own owner.
        var fresh = await tier.StartChildAsync("child-fresh");
        foreach (var (child, dir) in new[] { (a, "oci-alice-offline"), (b, "oci-alice-offline-b"), (fresh, "oci-alice-offline-fresh") })
        {
            var offline = await PullAsync(world, child, "private/app:v1", dir, alice);
            Assert.True(offline.Succeeded, offline.StdErr + "\n" + Describe(tier, child));
        }

        // ctr asks for its token with an OAuth POST (the password in the form), which the child sends each parent the same way.
        var freshForCtr = await tier.StartChildAsync("child-fresh-ctr");
        await using (var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd-alice-offline"), CancellationToken.None))
        {
            var fetched = await containerd.ContentFetchAsync($"{world.Authority}/private/app:v1", freshForCtr.Url, freshForCtr.CaBundlePath, alice, CancellationToken.None);
            Assert.True(fetched.Succeeded, fetched.StdErr + "\n" + Describe(tier, freshForCtr));
        }

        foreach (var (child, creds, dir) in new[] { (b, $"bob:{bobPassword}", "oci-bob-off"), (b, null, "oci-anon-off"), (a, null, "oci-anon-off-a"), (b, $"alice:wrong-{alicePassword}", "oci-wrong-off"),
            (fresh, $"bob:{bobPassword}", "oci-bob-off-fresh"), (fresh, null, "oci-anon-off-fresh") })
        {
            var refused = await PullAsync(world, child, "private/app:v1", dir, creds);
            Assert.False(refused.Succeeded, $"{creds ?? "anonymous"} pulled private/app offline through {child.Url}");
            Assert.False(Directory.Exists(Path.Combine(world.Dir.Combine(dir), "blobs", "sha256")) &&
                app.Layers.Any(l => File.Exists(Path.Combine(world.Dir.Combine(dir), "blobs", "sha256", l.Digest["sha256:".Length..]))));
        }
    }

    [Fact]
    public async Task RequestThatAlreadyPassedThroughThisProxy_RefusedAsALoop()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { InstanceName = "loop-me" });
        using var client = ProxyClients.Create(world.Proxy);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{world.Authority}/v2/");
        request.Headers.TryAddWithoutValidation("Via", "1.1 child-x (MitmCache), 1.1 loop-me (MitmCache)");

        using var looped = await client.SendAsync(request);
        using var clean = await client.GetAsync($"https://{world.Authority}/v2/");

        Assert.Equal((HttpStatusCode)508, looped.StatusCode);
        Assert.Equal(HttpStatusCode.OK, clean.StatusCode);
    }
}
