using System.Diagnostics;
using System.Net.Http.Headers;
using MitmCache.Core.Tests;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using MitmCache.Upstream;
using Xunit.Abstractions;
using MediaTypes = MitmCache.Tests.Common.MediaTypes;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>
/// Outages that hang, with the real registry and real clients: the registry's packets dropped inside a private
/// network namespace (no RST, no ICMP: connections open and new alike just stop), or its port taken over by a
/// server that accepts connections and never answers. Either way, pulls of cached images must cost what they cost
/// when the registry is simply dead (connections refused at once), and private images must stay private.
/// </summary>
/// <remarks>
/// The bounds compare pulls within one test, on a machine shared with other builds and tests: a pull of the same
/// cached image varies by a second or more there, whatever the proxy does. So each bound is the measured
/// refused-registry pull, times the factor the issue asks for, plus <see cref="Slack"/>. The outage they catch
/// costs far more than that slack: before upstream health, every pull waited 10 s per request that asked upstream
/// (skopeo 20 s, ctr 10 s for a small image; after the manifest TTL 10 s more per layer).
/// </remarks>
public sealed class UpstreamOutageTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan UpstreamTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Slack = TimeSpan.FromSeconds(1.5);

    public enum Outage
    {
        /// <summary>Every packet to the registry's port dropped (iptables inside the registry's namespace).</summary>
        Blackhole,

        /// <summary>The registry killed and its port taken by a <see cref="HangingServer"/>: TCP accepted, nothing else.</summary>
        Hang,
    }

    [Theory]
    [InlineData(Outage.Blackhole, "skopeo")]
    [InlineData(Outage.Blackhole, "ctr")]
    [InlineData(Outage.Hang, "skopeo")]
    [InlineData(Outage.Hang, "ctr")]
    public async Task CachedImages_RegistryHangs_PullsCostWhatARefusedRegistryCosts_AndTagsGoUpstreamAgainOnceItAnswers(Outage outage, string client)
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var network = outage == Outage.Blackhole ? await NetworkNamespace.CreateAsync() : null;
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false,
            s => s with { ConnectTimeout = ConnectTimeout, UpstreamTimeout = UpstreamTimeout }, time: clock, network: network);
        await world.PushImageAsync("library/three", "v1", Layers(3, seed: 300));
        await world.PushImageAsync("library/ten", "v1", Layers(10, seed: 310));
        string[] images = [$"{world.Authority}/library/three:v1", $"{world.Authority}/library/ten:v1"];
        var puller = new Puller(world, client);
        foreach (var image in images)
        {
            await puller.PullAsync(image); // warms the cache
        }

        // The baseline: the registry dead, connections refused at once.
        world.Registry.Kill();
        var refusedFirst = await puller.PullAsync(images[0]);
        TimeSpan[] refused = [await puller.PullAsync(images[0]), await puller.PullAsync(images[1])];
        await world.Registry.RestartAsync();
        Assert.True(await TagsGoUpstreamWithinAsync(world, UpstreamHealth.MaxProbeDelay + UpstreamTimeout), "the registry came back, the proxy did not see it");

        // The same registry hanging: the first pull finds out (within a connect timeout or two), later ones know.
        var downLines = DownLines(world);
        var hanging = await HangAsync(outage, world, network);
        var first = await puller.PullAsync(images[0]);
        Report("refused", refusedFirst, refused);
        AssertWithin(first, refusedFirst + (2 * ConnectTimeout), "the first pull while the registry hangs");
        TimeSpan[] later = [await puller.PullAsync(images[0]), await puller.PullAsync(images[1])];
        Report("hanging", first, later);
        for (var i = 0; i < images.Length; i++)
        {
            AssertWithin(later[i], refused[i] * 1.2, $"a later pull of {images[i]} while the registry hangs");
        }

        // Past the manifest TTL "public" must be proven again: without upstream, the offline rules answer at once.
        await world.Proxy.Get<MitmCache.Caching.BlobCache>().FillsEnded(); // fills record links and grants after the client's last byte
        clock.Advance(world.Proxy.Settings.ManifestTtl + TimeSpan.FromMinutes(1));
        TimeSpan[] afterTtl = [await puller.PullAsync(images[0]), await puller.PullAsync(images[1])];
        Report("hanging, past the TTL", TimeSpan.Zero, afterTtl);
        for (var i = 0; i < images.Length; i++)
        {
            AssertWithin(afterTtl[i], refused[i] * 1.2, $"a pull of {images[i]} past the manifest TTL while the registry hangs");
        }

        Assert.Equal(downLines + 1, DownLines(world)); // one line for the outage, not one per request

        // It answers again: the probe sees it within its interval, and tags are asked upstream first again.
        await EndHangAsync(outage, world, network, hanging);
        var back = Stopwatch.StartNew();
        Assert.True(await TagsGoUpstreamWithinAsync(world, UpstreamHealth.MaxProbeDelay + ConnectTimeout + Slack), world.Proxy.Log.Tail());
        output.WriteLine($"tags upstream-first again {back.Elapsed.TotalSeconds:0.0} s after the registry answered");
    }

    [Fact]
    public async Task PrivateImage_UpstreamsHang_GrantedCredentialPullsAtOnce_AnonymousAndUngrantedRefusedAtOnce()
    {
        const string alicePassword = "alice-Secret-13";
        const string bobPassword = "bob-Secret-13";
        static string[] acl(string? user, string repository, string[] requested) => (user, repository) switch
        {
            (TokenServer.AdminUser, _) => requested,
            (_, "public/base") => requested.Where(a => a == "pull").ToArray(),
            ("alice", "private/app") => requested.Where(a => a == "pull").ToArray(),
            _ => [],
        };
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, s => s with { ConnectTimeout = ConnectTimeout, UpstreamTimeout = UpstreamTimeout },
            acl: acl, users: new Dictionary<string, string> { ["alice"] = alicePassword, ["bob"] = bobPassword });
        await world.PushImageAsync("public/base", "v1", Layers(2, seed: 320));
        await world.PushImageAsync("private/app", "v1", Layers(3, seed: 330));
        var app = $"{world.Authority}/private/app:v1";
        var alice = $"alice:{alicePassword}";
        var skopeo = new Puller(world, "skopeo");
        var ctr = new Puller(world, "ctr");
        await skopeo.PullAsync(app, alice);
        await ctr.PullAsync(app, alice);
        await skopeo.PullAsync($"{world.Authority}/public/base:v1");
        var online = await skopeo.PullAsync(app, alice); // warm, upstream answering: what "at once" is measured against

        await world.HangUpstreamsAsync(); // registry, token server and CDN: connections accepted, never answered

        // Alice's first pull finds two hosts hanging (the registry, then the token server): a connect timeout each.
        var first = await skopeo.PullAsync(app, alice);
        output.WriteLine($"online {online.TotalSeconds:0.00} s, first while hanging {first.TotalSeconds:0.00} s");
        AssertWithin(first, online + (2 * ConnectTimeout), "alice's first pull, granted, while every upstream hangs");
        AssertWithin(await ctr.PullAsync(app, alice), online, "alice's pull with ctr, the upstreams known to hang");
        AssertWithin(await skopeo.PullAsync($"{world.Authority}/public/base:v1"), online, "an anonymous pull of a public image");

        foreach (var (who, creds) in new[] { ("anonymous", (string?)null), ("bob, who holds no grant", $"bob:{bobPassword}"), ("alice with a wrong password", $"alice:wrong-{alicePassword}") })
        {
            var clock = Stopwatch.StartNew();
            var refused = await skopeo.TryPullAsync(app, creds);
            Assert.False(refused.Succeeded, $"{who} pulled a private image while upstream hangs");
            AssertWithin(clock.Elapsed, online, $"the refusal of {who}");
        }
    }

    /// <summary>
    /// Past the manifest TTL, "public" is proven again with a blob HEAD before a cached blob is served to a client
    /// without credentials; 20 clients that need the same proof at once share one HEAD. The scene: <c>--manifest-policy
    /// ttl</c>, a public repository whose tag a client with credentials refreshed (which proves nothing about the
    /// public), then 20 anonymous pulls. The registry sits 150 ms away (each way) behind a <see cref="LatencyRelay"/>,
    /// as real ones do: on loopback no two clients would ever ask at the same time.
    /// </summary>
    [Fact]
    public async Task TwentyWarmPullsPastTheTtl_AtMostOneHeadPerBlobAndRepository()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var relay = LatencyRelay.Start(TimeSpan.FromMilliseconds(150));
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with
        {
            ManifestPolicy = MitmCache.Configuration.ManifestPolicy.Ttl,
            ConnectTo = [.. s.ConnectTo.Select(rule => rule.Host == Hosts.Registry ? rule with { Address = "127.0.0.1", TargetPort = relay.Port } : rule)],
        }, time: clock);
        relay.Target = new System.Net.IPEndPoint(world.Registry.Address, world.Registry.Port);
        var image = await world.PushImageAsync("library/warm", "v1", Layers(4, seed: 340));
        var reference = $"{world.Authority}/library/warm:v1";
        var skopeo = new Puller(world, "skopeo");
        await skopeo.PullAsync(reference); // anonymous: cached, and the repository known public
        await world.Proxy.Get<MitmCache.Caching.BlobCache>().FillsEnded(); // fills record links and grants after the client's last byte

        clock.Advance(world.Proxy.Settings.ManifestTtl + TimeSpan.FromMinutes(1));
        using (var client = ProxyClients.Create(world.Proxy))
        using (var refresh = new HttpRequestMessage(HttpMethod.Get, $"https://{world.Authority}/v2/library/warm/manifests/v1"))
        {
            // skopeo's own Accept set, so that the refreshed tag is the one skopeo's pulls find.
            var skopeoAccepts = world.Proxy.Get<MitmCache.Caching.TagRecords>().FindTags(world.Authority, "library/warm", "v1").Single().AcceptKey;
            refresh.Headers.TryAddWithoutValidation("Accept", skopeoAccepts.Split(','));
            refresh.Headers.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String("ci:token"u8));
            using var refreshed = await client.SendAsync(refresh);
            Assert.Equal("miss", refreshed.Headers.GetValues(RegistryResponses.ResultHeader).Single()); // the tag is fresh again
        }

        await world.Registry.SyncAccessLogAsync();
        world.Registry.ClearAccessLog();
        await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => skopeo.PullAsync(reference)));

        await world.Registry.SyncAccessLogAsync();
        var heads = image.Blobs.Select(b => world.Registry.CountRequests("HEAD", $"/v2/library/warm/blobs/{b.Digest}")).ToList();
        output.WriteLine($"HEADs per blob: {string.Join(", ", heads)}");
        Assert.All(heads, count => Assert.True(count <= 1, $"{count} HEADs for one blob"));
        Assert.Equal(0, world.Registry.CountRequests("GET", "/blobs/"));
        Assert.Equal(0, world.Registry.CountRequests("GET", "/manifests/")); // tags from the cache, as --manifest-policy ttl says
    }

    private static int DownLines(RegistryWorld world) => world.Proxy.Log.Lines.Count(l =>
        l.Contains("\"EventId\":{\"Id\":206", StringComparison.Ordinal) && l.Contains(world.Authority, StringComparison.Ordinal));

    private static (int Size, int Seed)[] Layers(int count, int seed) =>
        Enumerable.Range(0, count).Select(i => (20_000 + (i * 1_000), seed + i)).ToArray();

    private void Report(string what, TimeSpan first, TimeSpan[] pulls) =>
        output.WriteLine($"{what}: first {first.TotalSeconds:0.00} s, then {string.Join(", ", pulls.Select(p => $"{p.TotalSeconds:0.00} s"))}");

    private static void AssertWithin(TimeSpan measured, TimeSpan bound, string what) =>
        Assert.True(measured <= bound + Slack, $"{what} took {measured.TotalSeconds:0.00} s; the bound is {(bound + Slack).TotalSeconds:0.00} s");

    /// <summary>Asks for the tag through the proxy until upstream answers it (a fresh answer, not the cache's); false on timeout.</summary>
    private static async Task<bool> TagsGoUpstreamWithinAsync(RegistryWorld world, TimeSpan timeout)
    {
        using var client = ProxyClients.Create(world.Proxy);
        return await Poll.UntilAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{world.Authority}/v2/library/three/manifests/v1");
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(MediaTypes.OciManifest));
            using var response = await client.SendAsync(request);
            return response.Headers.TryGetValues(RegistryResponses.ResultHeader, out var result) && result.Single() == "miss";
        }, timeout);
    }

    private static async Task<IReadOnlyList<HangingServer>> HangAsync(Outage outage, RegistryWorld world, NetworkNamespace? network)
    {
        if (outage == Outage.Blackhole)
        {
            await network!.DropAsync(world.Registry.Port);
            return [];
        }

        return await world.HangUpstreamsAsync();
    }

    private static async Task EndHangAsync(Outage outage, RegistryWorld world, NetworkNamespace? network, IReadOnlyList<HangingServer> hanging)
    {
        if (outage == Outage.Blackhole)
        {
            await network!.UndropAsync(world.Registry.Port);
            return;
        }

        foreach (var server in hanging)
        {
            await server.DisposeAsync();
        }

        await world.Registry.RestartAsync();
    }

    /// <summary>Pulls through the proxy into an empty client store (a fresh OCI directory, a fresh containerd), timing only the client.</summary>
    private sealed class Puller(RegistryWorld world, string client)
    {
        private int _count;

        public async Task<TimeSpan> PullAsync(string image, string? creds = null)
        {
            var clock = Stopwatch.StartNew();
            var result = await TryPullAsync(image, creds, clock);
            Assert.True(result.Succeeded, $"{client} pull of {image}: {result}\n{world.Proxy.Log.Tail()}");
            return clock.Elapsed;
        }

        public Task<ProcessResult> TryPullAsync(string image, string? creds) => TryPullAsync(image, creds, Stopwatch.StartNew());

        private async Task<ProcessResult> TryPullAsync(string image, string? creds, Stopwatch clock)
        {
            var dir = world.Dir.Combine($"{client}-{Interlocked.Increment(ref _count)}");
            Directory.CreateDirectory(dir);
            if (client == "skopeo")
            {
                clock.Restart();
                var copied = await Skopeo.CopyToOciAsync(image, Path.Combine(dir, "oci"), world.Proxy.Url, world.Proxy.CaBundlePath, creds, all: false, CancellationToken.None);
                clock.Stop();
                return copied;
            }

            await using var containerd = await ContainerdServer.StartAsync(dir, CancellationToken.None);
            clock.Restart();
            var fetched = await containerd.ContentFetchAsync(image, world.Proxy.Url, world.Proxy.CaBundlePath, creds, CancellationToken.None);
            clock.Stop();
            return fetched;
        }
    }
}
