using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using MediaTypes = MitmCache.Tests.Common.MediaTypes;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>
/// An intercepted registry that lies (<see cref="HostileRegistry"/>, as <c>evil.test</c>) next to the real one:
/// it cannot steer the proxy to addresses a client could not reach, store what is not a manifest, or take
/// over another registry's paths or token realm, and none of it survives a restart.
/// </summary>
public sealed class HostileUpstreamTests
{
    private const string AlicePassword = "alice-Secret-77";

    /// <summary>A valid OCI manifest, so that only the redirect rules can keep it out.</summary>
    private static readonly byte[] s_secret = new OciImageBuilder().AddLayer(512, 901).Build().Manifest;

    public static TheoryData<string> InternalTargets => ["http://127.0.0.1:{plain}/secret", "https://127.0.0.1:{tls}/secret", "https://localhost:{tls}/secret"];

    [Theory]
    [MemberData(nameof(InternalTargets))]
    public async Task RedirectToAnInternalAddress_NotFollowed_NothingServedOrCached(string targetTemplate)
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var secretRequests = 0;
        RequestDelegate secret = async context =>
        {
            Interlocked.Increment(ref secretRequests);
            context.Response.ContentType = MediaTypes.OciManifest;
            await context.Response.Body.WriteAsync(s_secret);
        };
        var (plainApp, plainPort) = await LoopbackKestrel.StartAsync(null, 0, secret, CancellationToken.None);
        var (tlsApp, tlsPort) = await LoopbackKestrel.StartAsync(world.Pki.IssueServerCertificate("localhost"), 0, secret, CancellationToken.None);
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        var target = targetTemplate.Replace("{plain}", $"{plainPort}", StringComparison.Ordinal).Replace("{tls}", $"{tlsPort}", StringComparison.Ordinal);
        var secretDigest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(s_secret));
        evil.On("/v2/x/", HostileRegistry.RedirectTo(_ => target)).On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        // The internal TLS port is even allowed for CONNECT: only the address rule keeps the proxy out.
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(s, evil.Host, evil.Port) with { AllowedPorts = new HashSet<int>(s.AllowedPorts) { evil.Port, tlsPort } });

        var inspect = await Skopeo.InspectAsync($"{evil.Authority}/x:latest", world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        using var client = ProxyClients.Create(world.Proxy);
        using var manifest = await client.GetAsync($"https://{evil.Authority}/v2/x/manifests/latest");
        using var blob = await client.GetAsync($"https://{evil.Authority}/v2/x/blobs/{secretDigest}");

        Assert.False(inspect.Succeeded, "skopeo got the internal body as a manifest:\n" + inspect.StdOut);
        Assert.NotEqual(HttpStatusCode.OK, manifest.StatusCode);
        Assert.NotEqual(HttpStatusCode.OK, blob.StatusCode);
        Assert.Equal(0, Volatile.Read(ref secretRequests));
        Assert.Null(world.Proxy.Get<BlobCache>().TryGet(ParseDigest(secretDigest)));
        Assert.Empty(world.Proxy.Get<TagRecords>().FindTags(evil.Authority, "x", "latest"));
        await plainApp.DisposeAsync();
        await tlsApp.DisposeAsync();
    }

    /// <summary>A redirect to another host (a CDN) never carries the client's credential there.</summary>
    [Fact]
    public async Task RedirectToAnotherHost_ClientsCredentialStaysBehind()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var blob = RandomNumberGenerator.GetBytes(4096);
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(blob));
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var cdn = await HostileRegistry.StartAsync(world.Pki, "cdn.evil.test");
        cdn.On("/", context =>
        {
            seen.Enqueue(context.Request.Headers.Authorization.ToString());
            return HostileRegistry.Body(blob, "application/octet-stream")(context);
        });
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/x/blobs/", HostileRegistry.RedirectTo(r => $"https://{cdn.Authority}{r.Path}"));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(RegistryWorld.Reach(s, evil.Host, evil.Port), cdn.Host, cdn.Port));

        using var client = ProxyClients.Create(world.Proxy);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{evil.Authority}/v2/x/blobs/{digest}");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "client-secret-token");
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(blob, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal([""], seen);
    }

    /// <summary>A site whose registry keeps its storage on an internal address says so with --allow-upstream-network.</summary>
    [Fact]
    public async Task RedirectToAnAllowedInternalNetwork_Followed()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var (storage, storagePort) = await LoopbackKestrel.StartAsync(world.Pki.IssueServerCertificate("localhost"), 0, async context =>
        {
            context.Response.ContentType = MediaTypes.OciManifest;
            await context.Response.Body.WriteAsync(s_secret);
        }, CancellationToken.None);
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/x/", HostileRegistry.RedirectTo(_ => $"https://127.0.0.1:{storagePort}/manifest")).On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(s, evil.Host, evil.Port) with
        {
            AllowedPorts = new HashSet<int>(s.AllowedPorts) { evil.Port, storagePort },
            AllowedUpstreamNetworks = [System.Net.IPNetwork.Parse("127.0.0.0/8")],
        });

        var inspect = await Skopeo.InspectAsync($"{evil.Authority}/x:latest", world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);

        Assert.True(inspect.Succeeded, inspect.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(System.Text.Encoding.UTF8.GetString(s_secret), inspect.StdOut.Trim());
        await storage.DisposeAsync();
    }

    [Theory]
    [InlineData("{\"hello\":\"world\"}")]
    [InlineData("<html><body>captive portal</body></html>")]
    [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}")] // an index, served as a manifest
    public async Task BodyByTagThatIsNotTheManifestItClaims_NotStored(string body)
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        var bytes = System.Text.Encoding.UTF8.GetBytes(body);
        evil.On("/v2/x/manifests/", HostileRegistry.Body(bytes, MediaTypes.OciManifest)).On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(s, evil.Host, evil.Port));

        var inspect = await Skopeo.InspectAsync($"{evil.Authority}/x:latest", world.Proxy.Url, world.Proxy.CaBundlePath, null, CancellationToken.None);
        using var client = ProxyClients.Create(world.Proxy);
        using var response = await client.GetAsync($"https://{evil.Authority}/v2/x/manifests/latest");
        var answer = await response.Content.ReadAsStringAsync();

        Assert.False(inspect.Succeeded, "skopeo got a manifest that is none:\n" + inspect.StdOut);
        Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("MANIFEST_INVALID", answer, StringComparison.Ordinal);
        Assert.Null(world.Proxy.Get<BlobCache>().TryGet(Digest.Compute(bytes)));
        Assert.Empty(world.Proxy.Get<TagRecords>().FindTags(evil.Authority, "x", "latest"));
    }

    /// <summary>
    /// evil.test answers alice's private layer digest with other bytes of the same length before alice ever pulls it:
    /// a fill that fails its digest links nothing, so once alice has cached the layer, evil.test's path still cannot serve it.
    /// </summary>
    [Fact]
    public async Task FillThatFailsItsDigest_LinksNothing()
    {
        await using var world = await StartAliceWorldAsync();
        var app = await world.PushImageAsync("private/app", "v1", (20_000, 961), (10_000, 962));
        var layer = app.Layers[1];
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/x/blobs/", HostileRegistry.Body(RandomNumberGenerator.GetBytes(layer.Bytes.Length), "application/octet-stream"))
            .On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(s, evil.Host, evil.Port));
        var url = $"https://{evil.Authority}/v2/x/blobs/{layer.Digest}";
        using var client = ProxyClients.Create(world.Proxy);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetByteArrayAsync(url)); // broken, never a clean end

        var pulled = await Skopeo.CopyToOciAsync($"{world.Authority}/private/app:v1", world.Dir.Combine("alice"), world.Proxy.Url, world.Proxy.CaBundlePath, $"alice:{AlicePassword}", false, CancellationToken.None);
        Assert.True(pulled.Succeeded, pulled.StdErr);
        await world.KillUpstreamsAsync();
        await evil.StopAsync();

        using var after = await client.GetAsync(url);
        var body = await after.Content.ReadAsByteArrayAsync();
        Assert.False(after.StatusCode == HttpStatusCode.OK || body.AsSpan().IndexOf(layer.Bytes.AsSpan(0, 1024)) >= 0, $"evil.test served alice's layer: {after.StatusCode}");
    }

    /// <summary>evil.test's challenge names registry.test's manifest path as its token realm: that path stays a manifest, across a restart and offline.</summary>
    [Fact]
    public async Task ChallengeNamingAnotherRegistrysPath_ThatPathStaysTheRegistrys()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/app", "v1", (20_000, 931));
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/", HostileRegistry.Challenge($"Bearer realm=\"https://{world.Authority}/v2/library/app/manifests/v1\",service=\"evil\""));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(s, evil.Host, evil.Port));
        using (var client = ProxyClients.Create(world.Proxy))
        {
            using var ping = await client.GetAsync($"https://{evil.Authority}/v2/");
            Assert.Equal(HttpStatusCode.Unauthorized, ping.StatusCode);
            using var request = new HttpRequestMessage(HttpMethod.Get, $"https://{world.Authority}/v2/library/app/manifests/v1");
            request.Headers.Accept.ParseAdd(MediaTypes.OciManifest);
            using var manifest = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, manifest.StatusCode);
            Assert.Equal("miss", Assert.Single(manifest.Headers.GetValues("X-MitmCache")));
        }

        var online = await Skopeo.CopyToOciAsync($"{world.Authority}/library/app:v1", world.Dir.Combine("online"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(online.Succeeded, online.StdErr);
        await world.Proxy.RestartAsync();
        world.Registry.Kill();

        var offline = await Skopeo.CopyToOciAsync($"{world.Authority}/library/app:v1", world.Dir.Combine("offline"), world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(offline.Succeeded, offline.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Equal(image.ManifestDigest, MitmCache.FunctionalTests.Registry.PullThroughTests.ReadOciManifestDigest(world.Dir.Combine("offline")));
    }

    /// <summary>evil.test names registry.test's own token realm: alice's token requests stay registry.test's, before and after a restart.</summary>
    [Fact]
    public async Task ChallengeNamingAnotherRegistrysRealm_TokenRequestsStayTheRegistrys()
    {
        await using var world = await StartAliceWorldAsync();
        var app = await world.PushImageAsync("private/app", "v1", (20_000, 941), (10_000, 942));
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/", HostileRegistry.Challenge($"Bearer realm=\"{world.Tokens!.Realm}\",service=\"{world.Tokens.Service}\""));
        await world.ReplaceProxyAsync(s => RegistryWorld.Reach(s, evil.Host, evil.Port));
        var reference = $"{world.Authority}/private/app:v1";
        var pulled = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("online"), world.Proxy.Url, world.Proxy.CaBundlePath, $"alice:{AlicePassword}", false, CancellationToken.None);
        Assert.True(pulled.Succeeded, pulled.StdErr);
        using (var client = ProxyClients.Create(world.Proxy))
        {
            using var ping = await client.GetAsync($"https://{evil.Authority}/v2/"); // evil.test's challenge comes last
            Assert.Equal(HttpStatusCode.Unauthorized, ping.StatusCode);
        }

        await world.KillUpstreamsAsync();
        foreach (var restarted in new[] { false, true })
        {
            if (restarted)
            {
                await world.Proxy.RestartAsync();
            }

            var dir = world.Dir.Combine($"offline-{restarted}");
            var alice = await Skopeo.CopyToOciAsync(reference, dir, world.Proxy.Url, world.Proxy.CaBundlePath, $"alice:{AlicePassword}", false, CancellationToken.None);
            Assert.True(alice.Succeeded, $"restarted {restarted}: {alice.StdErr}\n{world.Proxy.Log.Tail()}");
            var anonymous = await Skopeo.CopyToOciAsync(reference, dir + "-anonymous", world.Proxy.Url, world.Proxy.CaBundlePath, null, false, CancellationToken.None);
            Assert.False(anonymous.Succeeded, $"restarted {restarted}: an anonymous client pulled alice's image");
            Assert.False(File.Exists(Path.Combine(dir + "-anonymous", "blobs", "sha256", Digests.Hex(app.Layers[1].Digest))));
        }
    }

    /// <summary>A token-auth world where only alice (and the admin who pushes) may pull anything.</summary>
    private static Task<RegistryWorld> StartAliceWorldAsync() => RegistryWorld.StartAsync(tokenAuth: true,
        acl: (user, repository, requested) => user is "alice" or TokenServer.AdminUser ? requested : [],
        users: new Dictionary<string, string> { ["alice"] = AlicePassword });

    private static Digest ParseDigest(string text) => Digest.TryParse(text, out var digest) ? digest : throw new FormatException(text);
}
