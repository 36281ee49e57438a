using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>
/// The private-images matrix with a real token-auth registry and per-repository ACLs, online and with
/// the registry and token server dead: alice reads private/app, bob reads team-b/tool, everyone reads
/// public/base. private/app and team-b/tool share a base layer and each has a private layer.
/// </summary>
public sealed class PrivateImageTests
{
    private const string AlicePassword = "alice-Secret-77";
    private const string BobPassword = "bob-Secret-88";

    private static string[] Acl(string? user, string repository, string[] requested) => (user, repository) switch
    {
        (TokenServer.AdminUser, _) => requested,
        (_, "public/base") => requested.Where(a => a == "pull").ToArray(),
        ("alice", "private/app") => requested.Where(a => a == "pull").ToArray(),
        ("bob", "team-b/tool") => requested.Where(a => a == "pull").ToArray(),
        _ => [],
    };

    /// <summary>The token-auth world of this matrix: alice, bob and <see cref="Acl"/>.</summary>
    private static Task<RegistryWorld> StartWorldAsync() => RegistryWorld.StartAsync(tokenAuth: true, acl: Acl,
        users: new Dictionary<string, string> { ["alice"] = AlicePassword, ["bob"] = BobPassword });

    [Fact]
    public async Task Matrix_OnlineThenOffline_PrivateBytesOnlyReachAuthorizedClients()
    {
        await using var world = await StartWorldAsync();
        var publicBase = await world.PushImageAsync("public/base", "v1", (30_000, 100));
        var app = await world.PushImageAsync("private/app", "v1", (30_000, 100), (20_000, 101));
        var tool = await world.PushImageAsync("team-b/tool", "v1", (30_000, 100), (20_000, 102));
        var appLayer = app.Layers[1];
        var toolLayer = tool.Layers[1];
        var registry = world.Authority;
        var alice = $"alice:{AlicePassword}";
        var bob = $"bob:{BobPassword}";
        await using var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd"), CancellationToken.None);

        // Online: everyone pulls what upstream allows, through the proxy (this also warms the cache).
        await AssertPullsAsync(world, $"{registry}/public/base:v1", null);
        await AssertPullsAsync(world, $"{registry}/private/app:v1", alice);
        await AssertPullsAsync(world, $"{registry}/team-b/tool:v1", bob);
        var ctrAlice = await containerd.ContentFetchAsync($"{registry}/private/app:v1", world.Proxy.Url, world.Proxy.CaBundlePath, alice, CancellationToken.None);
        Assert.True(ctrAlice.Succeeded, ctrAlice.StdErr);

        await AssertMatrixAsync(world, app, toolLayer, appLayer, online: true);

        await world.KillUpstreamsAsync();

        await AssertMatrixAsync(world, app, toolLayer, appLayer, online: false);
        await AssertPullsAsync(world, $"{registry}/public/base:v1", null);
        await AssertPullsAsync(world, $"{registry}/public/base:v1", alice);
        await AssertPullsAsync(world, $"{registry}/private/app:v1", alice);
        await AssertPullsAsync(world, $"{registry}/team-b/tool:v1", bob);
        await using var freshContainerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd-offline"), CancellationToken.None);
        var ctrOffline = await freshContainerd.ContentFetchAsync($"{registry}/private/app:v1", world.Proxy.Url, world.Proxy.CaBundlePath, alice, CancellationToken.None);
        Assert.True(ctrOffline.Succeeded, ctrOffline.StdErr + "\n" + world.Proxy.Log.Tail());
        await AssertFailsAsync(world, $"{registry}/private/app:v1", null, appLayer.Digest);
        await AssertFailsAsync(world, $"{registry}/private/app:v1", bob, appLayer.Digest);
        await AssertFailsAsync(world, $"{registry}/private/app:v1", $"alice:wrong-{AlicePassword}", appLayer.Digest);

        // Revocation by hand: alice loses private/app offline, keeps public/base.
        var revoke = await ProcessRunner.RunAsync("dotnet", [typeof(MitmCache.Cli.RunVerb).Assembly.Location, "auth", "revoke",
            "--registry", registry, "--repository", "private/app", "--proxy", world.Proxy.Url]);
        Assert.True(revoke.Succeeded, revoke.StdOut + revoke.StdErr);
        Assert.Contains("\"revoked\":", revoke.StdOut, StringComparison.Ordinal);
        await AssertFailsAsync(world, $"{registry}/private/app:v1", alice, appLayer.Digest);
        var aliceAfterRevoke = await RegistryCalls.GetAsync(world.Proxy, $"https://{registry}/v2/private/app/manifests/v1", "alice", AlicePassword);
        Assert.Equal(HttpStatusCode.Unauthorized, aliceAfterRevoke.Status);
        await AssertPullsAsync(world, $"{registry}/public/base:v1", alice);
        Assert.Equal(publicBase.ManifestDigest, PullThroughTests.ReadOciManifestDigest(world.Dir.Combine(LastDir)));
    }

    /// <param name="anonymousAsksFirst">True: an anonymous client asks for the new tag first, and the anonymous token
    /// upstream refuses marks the repository private. False: nobody does; "public" is older than the manifest TTL, so
    /// the anonymous by-digest request is checked with upstream instead of being served.</param>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RepositoryMadePrivateUpstream_NewContentOnlyForAuthorizedClients_OnlineAndOffline(bool anonymousAsksFirst)
    {
        var open = true;
        string[] acl(string? user, string repository, string[] requested) => (user, repository) switch
        {
            (TokenServer.AdminUser, _) => requested,
            ("alice", "team/flip") => requested.Where(a => a == "pull").ToArray(),
            (_, "team/flip") when open => requested.Where(a => a == "pull").ToArray(),
            _ => [],
        };
        var ttl = TimeSpan.FromSeconds(2);
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, s => s with { ManifestTtl = ttl }, acl: acl,
            users: new Dictionary<string, string> { ["alice"] = AlicePassword });
        var registry = world.Authority;
        await world.PushImageAsync("team/flip", "v1", (30_000, 110));
        await AssertPullsAsync(world, $"{registry}/team/flip:v1", null); // public: cached for everyone

        open = false; // the owner makes the repository private, then pushes new content
        var secret = await world.PushImageAsync("team/flip", "v2", (30_000, 110), (20_000, 111));
        var secretLayer = secret.Layers[1];
        var secretBlob = $"https://{registry}/v2/team/flip/blobs/{secretLayer.Digest}";
        if (anonymousAsksFirst)
        {
            var anonymousManifest = await RegistryCalls.GetAsync(world.Proxy, $"https://{registry}/v2/team/flip/manifests/v2", null, null);
            Assert.Equal(HttpStatusCode.Unauthorized, anonymousManifest.Status);
        }

        await AssertPullsAsync(world, $"{registry}/team/flip:v2", $"alice:{AlicePassword}");
        if (!anonymousAsksFirst)
        {
            await Task.Delay(ttl + TimeSpan.FromMilliseconds(500));
        }

        foreach (var online in new[] { true, false })
        {
            if (!online)
            {
                await world.KillUpstreamsAsync();
            }

            var blob = await RegistryCalls.GetAsync(world.Proxy, secretBlob, null, null);
            Assert.True(blob.Status is HttpStatusCode.Unauthorized or HttpStatusCode.NotFound, $"anonymous, online {online}: {blob.Status}");
            Assert.False(Contains(blob.Body, secretLayer.Bytes), $"anonymous, online {online}: the new private layer leaked");
            await AssertFailsAsync(world, $"{registry}/team/flip@{secret.ManifestDigest}", null, secretLayer.Digest);
            var alice = await RegistryCalls.GetAsync(world.Proxy, secretBlob, "alice", AlicePassword);
            Assert.True(alice.Status == HttpStatusCode.OK, $"alice, online {online}: {alice.Status}");
            Assert.Equal(secretLayer.Bytes, alice.Body);
        }
    }

    /// <summary>A node that only ever ran containerd: no /v2/ ping ever told the proxy the token realm.</summary>
    [Fact]
    public async Task ContainerdOnly_PrivateImageOffline_OnlyTheGrantedCredentialPulls()
    {
        await using var world = await StartWorldAsync();
        var app = await world.PushImageAsync("private/app", "v2", (25_000, 110), (15_000, 111));
        var reference = $"{world.Authority}/private/app:v2";
        var alice = $"alice:{AlicePassword}";
        await using (var online = await ContainerdServer.StartAsync(world.Dir.Combine("ctr-online"), CancellationToken.None))
        {
            var fetch = await online.ContentFetchAsync(reference, world.Proxy.Url, world.Proxy.CaBundlePath, alice, CancellationToken.None);
            Assert.True(fetch.Succeeded, fetch.StdErr);
        }

        await world.KillUpstreamsAsync();

        await using var offline = await ContainerdServer.StartAsync(world.Dir.Combine("ctr-offline"), CancellationToken.None);
        var asAlice = await offline.ContentFetchAsync(reference, world.Proxy.Url, world.Proxy.CaBundlePath, alice, CancellationToken.None);
        Assert.True(asAlice.Succeeded, asAlice.StdErr + "\n" + world.Proxy.Log.Tail());
        await using var others = await ContainerdServer.StartAsync(world.Dir.Combine("ctr-others"), CancellationToken.None);
        foreach (var creds in new[] { null, $"bob:{BobPassword}", $"alice:wrong-{AlicePassword}" })
        {
            var refused = await others.ContentFetchAsync($"{world.Authority}/private/app@{app.ManifestDigest}", world.Proxy.Url, world.Proxy.CaBundlePath, creds, CancellationToken.None);
            Assert.False(refused.Succeeded, $"{creds?.Split(':')[0] ?? "anonymous"} pulled alice's private image offline");
        }
    }

    /// <summary>
    /// registry.k8s.io's shape as the second intercepted registry: k8s.test answers every /v2/ call, HEAD included,
    /// with a 307 to the registry behind it (pkg.test, anonymous). Its paths must never serve alice's cached private
    /// layer or manifest, online or with every upstream dead, while its own images still pull both ways.
    /// </summary>
    [Fact]
    public async Task RedirectingFront_CachedPrivateDigestsNeverServedOnItsPaths_OnlineOrOffline()
    {
        await using var world = await StartWorldAsync();
        var app = await world.PushImageAsync("private/app", "v1", (30_000, 100), (20_000, 101));
        var appLayer = app.Layers[1];
        await using var pkg = await RegistryServer.StartAsync(world.Pki, world.Dir.Combine("pkg"), new RegistryOptions { Host = "pkg.test" }, CancellationToken.None);
        var pause = new OciImageBuilder().AddLayer(30_000, 100).AddLayer(10_000, 120).Build(); // shares alice's base layer
        using (var http = pkg.CreateClient())
        {
            await new RegistryPusher(http, pkg.Authority).PushAsync("pause", "3.9", pause, CancellationToken.None);
        }

        await using var front = await HostileRegistry.StartAsync(world.Pki, "k8s.test");
        front.On("/", HostileRegistry.RedirectTo(r => $"https://{pkg.Authority}{r.Path}{r.QueryString}"));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(RegistryWorld.Reach(s, front.Host, front.Port), pkg.Host, pkg.Port));

        await AssertPullsAsync(world, $"{world.Authority}/private/app:v1", $"alice:{AlicePassword}");
        await AssertPullsAsync(world, $"{front.Authority}/pause:3.9", null);

        foreach (var online in new[] { true, false })
        {
            if (!online)
            {
                await world.KillUpstreamsAsync();
                pkg.Kill();
                await front.StopAsync();
            }

            var when = online ? "online" : "offline";
            foreach (var name in new[] { "anything", "pause", "private/app" })
            {
                var blob = await RegistryCalls.GetAsync(world.Proxy, $"https://{front.Authority}/v2/{name}/blobs/{appLayer.Digest}");
                Assert.False(blob.Status == HttpStatusCode.OK || Contains(blob.Body, appLayer.Bytes), $"{when}: k8s.test/{name} served alice's layer ({blob.Status})");
                var manifest = await RegistryCalls.GetAsync(world.Proxy, $"https://{front.Authority}/v2/{name}/manifests/{app.ManifestDigest}");
                Assert.False(manifest.Status == HttpStatusCode.OK || Contains(manifest.Body, app.Manifest), $"{when}: k8s.test/{name} served alice's manifest ({manifest.Status})");
            }

            await AssertFailsAsync(world, $"{front.Authority}/anything@{app.ManifestDigest}", null, appLayer.Digest);
            await AssertPullsAsync(world, $"{front.Authority}/pause:3.9", null);
        }
    }

    /// <summary>
    /// containerd with an identity token (<c>ctr --refresh</c>) asks for tokens with the OAuth form
    /// <c>grant_type=refresh_token</c>: a credential like any other, so what it pulls stays private to it.
    /// </summary>
    [Fact]
    public async Task RefreshTokenPull_StaysPrivateToThatCredential_OnlineAndOffline()
    {
        await using var world = await StartWorldAsync();
        var app = await world.PushImageAsync("private/app", "v1", (30_000, 100), (20_000, 101));
        var appLayer = app.Layers[1];
        var refresh = await world.GetRefreshTokenAsync("alice", AlicePassword);
        var reference = $"{world.Authority}/private/app:v1";
        await using (var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("ctr-online"), CancellationToken.None))
        {
            var fetch = await FetchWithRefreshTokenAsync(containerd, world, reference, refresh);
            Assert.True(fetch.Succeeded, fetch.StdErr + "\n" + world.Proxy.Log.Tail());
        }

        // Alice has no password in containerd: every token it got after ours came from the refresh grant.
        Assert.True(world.Tokens!.Log.Count(l => l.StartsWith("alice ", StringComparison.Ordinal)) >= 2, string.Join('\n', world.Tokens.Log));
        foreach (var online in new[] { true, false })
        {
            if (!online)
            {
                await world.KillUpstreamsAsync();
            }

            var when = online ? "online" : "offline";
            foreach (var (user, password) in new[] { ((string?)null, (string?)null), ("bob", BobPassword) })
            {
                var who = $"{user ?? "anonymous"} {when}";
                var blob = await RegistryCalls.GetAsync(world.Proxy, $"https://{world.Authority}/v2/private/app/blobs/{appLayer.Digest}", user, password);
                Assert.False(blob.Status == HttpStatusCode.OK || Contains(blob.Body, appLayer.Bytes), $"{who}: alice's layer {blob.Status}");
                var manifest = await RegistryCalls.GetAsync(world.Proxy, $"https://{world.Authority}/v2/private/app/manifests/{app.ManifestDigest}", user, password);
                Assert.False(manifest.Status == HttpStatusCode.OK || Contains(manifest.Body, app.Manifest), $"{who}: alice's manifest {manifest.Status}");
                await AssertFailsAsync(world, reference, password is null ? null : $"{user}:{password}", appLayer.Digest);
            }
        }

        await using var offline = await ContainerdServer.StartAsync(world.Dir.Combine("ctr-offline"), CancellationToken.None);
        var again = await FetchWithRefreshTokenAsync(offline, world, reference, refresh);
        Assert.True(again.Succeeded, again.StdErr + "\n" + world.Proxy.Log.Tail());
        var otherToken = await FetchWithRefreshTokenAsync(offline, world, $"{world.Authority}/private/app@{app.ManifestDigest}", "not-" + refresh);
        Assert.False(otherToken.Succeeded, "an unknown refresh token pulled alice's image offline");
    }

    /// <summary>
    /// A client upstream refuses learns nothing about what is cached: for alice's cached private layer and manifest
    /// it gets, byte for byte and header for header, what it gets for a digest nobody ever pulled, online and offline.
    /// </summary>
    [Fact]
    public async Task RefusedCachedDigest_AnsweredExactlyAsAnUncachedOne_OnlineAndOffline()
    {
        await using var world = await StartWorldAsync();
        var app = await world.PushImageAsync("private/app", "v1", (30_000, 100), (20_000, 101));
        await AssertPullsAsync(world, $"{world.Authority}/private/app:v1", $"alice:{AlicePassword}");
        var uncached = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var bobToken = await TokenAsync(world, "bob", BobPassword);
        foreach (var online in new[] { true, false })
        {
            if (!online)
            {
                await world.KillUpstreamsAsync();
            }

            foreach (var (who, token) in new[] { ("anonymous", (string?)null), ("bob", bobToken) })
            {
                foreach (var method in new[] { HttpMethod.Get, HttpMethod.Head })
                {
                    foreach (var kind in new[] { "blobs", "manifests" })
                    {
                        var cachedDigest = kind == "blobs" ? app.Layers[1].Digest : app.ManifestDigest;
                        var cached = await RawAsync(world.Proxy, method, $"https://{world.Authority}/v2/private/app/{kind}/{cachedDigest}", token);
                        var fresh = await RawAsync(world.Proxy, method, $"https://{world.Authority}/v2/private/app/{kind}/{uncached}", token);
                        var what = $"{who} {method} {kind} {(online ? "online" : "offline")}";
                        Assert.True(cached.Status != 200, $"{what}: the cached private digest was served");
                        Assert.True(fresh == cached, $"{what}: cached\n{cached}\nuncached\n{fresh}");
                    }
                }
            }
        }
    }

    private static Task<ProcessResult> FetchWithRefreshTokenAsync(ContainerdServer containerd, RegistryWorld world, string reference, string refreshToken) =>
        containerd.CtrAsync(["content", "fetch", "--tlscacert", world.Proxy.CaBundlePath, "--refresh", refreshToken, reference],
            new Dictionary<string, string?> { ["HTTPS_PROXY"] = world.Proxy.Url }, CancellationToken.None);

    /// <summary>A Bearer token for private/app pulls as <paramref name="user"/>, asked through the proxy.</summary>
    private static async Task<string> TokenAsync(RegistryWorld world, string user, string password)
    {
        using var client = ProxyClients.Create(world.Proxy);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{world.Tokens!.Realm}?service={world.Tokens.Service}&scope=repository:private/app:pull");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{user}:{password}")));
        using var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        using var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("token").GetString()!;
    }

    /// <summary>One answer as a client sees it: status, every header but Date (sorted), and the body as text.</summary>
    private sealed record RawAnswer(int Status, string Headers, string Body)
    {
        public override string ToString() => $"{Status}\n{Headers}\n{Body}";
    }

    private static async Task<RawAnswer> RawAsync(ProxyUnderTest proxy, HttpMethod method, string url, string? token)
    {
        using var client = ProxyClients.Create(proxy);
        using var request = new HttpRequestMessage(method, url);
        request.Headers.Accept.ParseAdd(MediaTypes.OciManifest);
        if (token is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        using var response = await client.SendAsync(request);
        var headers = response.Headers.Concat(response.Content.Headers)
            .Where(h => !h.Key.Equals("Date", StringComparison.OrdinalIgnoreCase))
            .Select(h => $"{h.Key.ToLowerInvariant()}: {string.Join(", ", h.Value)}")
            .Order(StringComparer.Ordinal);
        return new((int)response.StatusCode, string.Join('\n', headers), await response.Content.ReadAsStringAsync());
    }

    private static string LastDir = "";

    /// <summary>Direct calls: who gets the private manifest, and who can read bob's layer through private/app's path.</summary>
    private static async Task AssertMatrixAsync(RegistryWorld world, BuiltImage app, (string Digest, byte[] Bytes) toolLayer, (string Digest, byte[] Bytes) appLayer, bool online)
    {
        var registry = world.Authority;
        var manifest = $"https://{registry}/v2/private/app/manifests/v1";
        var wrongPath = $"https://{registry}/v2/private/app/blobs/{toolLayer.Digest}";
        var appBlob = $"https://{registry}/v2/private/app/blobs/{appLayer.Digest}";
        var when = online ? "online" : "offline";

        (string? User, string? Password, bool MayReadApp)[] clients =
        [
            (null, null, false),
            ("alice", AlicePassword, true),
            ("bob", BobPassword, false),
            ("alice", "wrong-" + AlicePassword, false),
        ];
        foreach (var (user, password, mayRead) in clients)
        {
            var who = $"{user ?? "anonymous"}{(password?.StartsWith("wrong", StringComparison.Ordinal) == true ? " (wrong password)" : "")} {when}";
            var m = await RegistryCalls.GetAsync(world.Proxy, manifest, user, password);
            if (mayRead)
            {
                Assert.True(m.Status == HttpStatusCode.OK, $"{who}: manifest {m.Status} token {m.TokenStatus}\n{world.Proxy.Log.Tail(15)}");
                Assert.Equal(app.Manifest, m.Body);
                var blob = await RegistryCalls.GetAsync(world.Proxy, appBlob, user, password);
                Assert.True(blob.Status == HttpStatusCode.OK, $"{who}: app layer {blob.Status}");
                Assert.Equal(appLayer.Bytes, blob.Body);
            }
            else
            {
                Assert.True(m.Status == HttpStatusCode.Unauthorized, $"{who}: manifest {m.Status}");
                Assert.False(Contains(m.Body, app.Manifest), $"{who}: manifest bytes leaked");
                var blob = await RegistryCalls.GetAsync(world.Proxy, appBlob, user, password);
                Assert.True(blob.Status is HttpStatusCode.Unauthorized or HttpStatusCode.NotFound, $"{who}: app layer {blob.Status}");
                Assert.False(Contains(blob.Body, appLayer.Bytes), $"{who}: app layer bytes leaked");
            }

            // Bob's layer is cached, but not linked to private/app: whoever asks gets what an uncached digest gets,
            // upstream's 404 online, and offline 401 for clients that may not read private/app, 503 for alice.
            var cross = await RegistryCalls.GetAsync(world.Proxy, wrongPath, user, password);
            Assert.True(cross.Status is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized or HttpStatusCode.ServiceUnavailable, $"{who}: bob's layer via private/app: {cross.Status}");
            if (mayRead)
            {
                Assert.Equal(online ? HttpStatusCode.NotFound : HttpStatusCode.ServiceUnavailable, cross.Status);
            }

            Assert.False(Contains(cross.Body, toolLayer.Bytes), $"{who}: bob's layer leaked through private/app's path");
        }
    }

    private static async Task AssertPullsAsync(RegistryWorld world, string reference, string? creds)
    {
        LastDir = $"oci-{Guid.NewGuid():N}";
        var result = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine(LastDir), world.Proxy.Url, world.Proxy.CaBundlePath, creds, false, CancellationToken.None);
        Assert.True(result.Succeeded, $"{reference} as {creds?.Split(':')[0] ?? "anonymous"}: {result.StdErr}\n{world.Proxy.Log.Tail()}");
    }

    private static async Task AssertFailsAsync(RegistryWorld world, string reference, string? creds, string privateDigest)
    {
        var dir = world.Dir.Combine($"oci-{Guid.NewGuid():N}");
        var result = await Skopeo.CopyToOciAsync(reference, dir, world.Proxy.Url, world.Proxy.CaBundlePath, creds, false, CancellationToken.None);
        Assert.False(result.Succeeded, $"{reference} as {creds?.Split(':')[0] ?? "anonymous"} should fail");
        Assert.False(File.Exists(Path.Combine(dir, "blobs", "sha256", Digests.Hex(privateDigest))), "private layer reached the client");
    }

    private static bool Contains(byte[] haystack, byte[] needle) =>
        needle.Length > 0 && haystack.Length >= needle.Length && haystack.AsSpan().IndexOf(needle.AsSpan(0, Math.Min(needle.Length, 4096))) >= 0;
}
