using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using MitmCache.Tunneling;
using static MitmCache.FunctionalTests.ObjectStore.BlobStoreProxyTests;

namespace MitmCache.FunctionalTests.ObjectStore;

/// <summary>
/// The registry's <c>/v2/</c> answer read from the bucket by a parent that never saw the registry, with the registry dead:
/// a manifest refused with the registry's challenge (containerd never pings), and a realm the reader's own rule would not
/// honour from upstream is not honoured from the bucket either. The objects are written by hand, as another parent (or
/// anyone with the bucket's keys) could.
/// </summary>
[Collection(CephRoundTripCollection.Name)]
public sealed class SharedPingOfflineTests(CephEngineFixture fixture)
{
    private CephRgw Engine => fixture.Engine;

    [Fact]
    public async Task FreshParent_RegistryDead_AnonymousManifestRequest_RefusedWithTheSharedChallengeScopedToTheRepository()
    {
        // Without the shared answer: 503 (nothing remembered to challenge with).
        var (world, response) = await RefusedOfflineAsync(registry => $"Bearer realm=\"https://auth.test:1/token\",service=\"{registry}\"", "library/never/manifests/latest");
        await using (world)
        using (response)
        {
            Assert.Equal($"Bearer realm=\"https://auth.test:1/token\",service=\"{world.Authority}\",scope=\"repository:library/never:pull\"",
                string.Join(", ", response.Headers.WwwAuthenticate));
        }
    }

    [Fact]
    public async Task FreshParent_RegistryDead_SharedChallengeWithARealmOnARegistryRoute_Served_ButTheRealmNotHonoured()
    {
        var (world, response) = await RefusedOfflineAsync(registry => $"Bearer realm=\"https://{registry}/v2/library/app/manifests/latest\"", "");
        await using (world)
        using (response)
        {
            Assert.Null(world.Proxy.Get<RegistryChallenges>().Find(world.Authority)!.Realm);
            var port = int.Parse(world.Authority.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
            Assert.Null(world.Proxy.Get<TokenEndpoint>().RegistriesFor(new InterceptTarget(world.Authority.Split(':')[0], port), "/v2/library/app/manifests/latest"));
        }
    }

    /// <summary>
    /// A world whose proxy has a fresh bucket prefix holding only the registry's ping answer (<paramref name="challenge"/>),
    /// its upstreams dead, and the proxy's 401 to an anonymous <c>GET /v2/PATH</c>.
    /// </summary>
    private async Task<(RegistryWorld World, HttpResponseMessage Response)> RefusedOfflineAsync(Func<string, string> challenge, string path)
    {
        var world = await StartWithSharedPingAsync(challenge);
        using var client = ProxyClients.Create(world.Proxy);
        var response = await client.GetAsync($"https://{world.Authority}/v2/{path}");
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            var log = world.Proxy.Log.Tail();
            await world.DisposeAsync();
            Assert.Fail($"{response.StatusCode}, not 401\n{log}");
        }

        return (world, response);
    }

    /// <summary>A world whose proxy has a fresh bucket prefix holding only the registry's ping answer, and whose upstreams are dead.</summary>
    private async Task<RegistryWorld> StartWithSharedPingAsync(Func<string, string> challenge)
    {
        var prefix = $"ping-offline-{Guid.NewGuid():N}";
        var world = await RegistryWorld.StartAsync(tokenAuth: false, s => WithBlobStore(s, Engine, prefix));
        var json = System.Text.Json.JsonSerializer.Serialize(new { registry = world.Authority, wwwAuthenticate = challenge(world.Authority), redirect = (string?)null, seenAt = DateTimeOffset.UtcNow });
        using (var s3 = Engine.CreateClient())
        {
            await s3.PutObjectAsync(new Amazon.S3.Model.PutObjectRequest { BucketName = CephEngineFixture.Bucket, Key = $"{prefix}/registries/{world.Authority}/ping", ContentBody = json });
        }

        await world.KillUpstreamsAsync();
        return world;
    }
}
