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

    [Fact]
    public async Task Matrix_OnlineThenOffline_PrivateBytesOnlyReachAuthorizedClients()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, acl: Acl,
            users: new Dictionary<string, string> { ["alice"] = AlicePassword, ["bob"] = BobPassword });
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
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true, acl: Acl,
            users: new Dictionary<string, string> { ["alice"] = AlicePassword, ["bob"] = BobPassword });
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

            var cross = await RegistryCalls.GetAsync(world.Proxy, wrongPath, user, password);
            Assert.True(cross.Status is HttpStatusCode.NotFound or HttpStatusCode.Unauthorized, $"{who}: bob's layer via private/app: {cross.Status}");
            if (mayRead)
            {
                Assert.Equal(HttpStatusCode.NotFound, cross.Status);
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
