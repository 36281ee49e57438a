using System.Net;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using MitmCache.Core.Tests.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Registry;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Registry;

public sealed class RegistryChallengesTests : IDisposable
{
    private const string Registry = "registry-1.docker.io";
    private readonly TempDirectory _directory = new();
    private readonly FakeTimeProvider _time = new();
    private readonly TestIndex _index;
    private readonly TokenEndpoint _tokens;
    private readonly RegistryChallenges _challenges;
    private readonly HttpMessageInvoker _invoker = new(new HttpClientHandler());
    private readonly RegistryUpstream _upstream;

    public RegistryChallengesTests()
    {
        var settings = TestSettings.Create(_directory.Path, 1L << 30);
        _index = new TestIndex(_directory.Combine("index.db"), _time);
        var connector = new UpstreamConnector(settings);
        _upstream = new RegistryUpstream(_invoker, connector, new UpstreamHealth(connector, settings, TimeProvider.System, NullLogger<UpstreamHealth>.Instance), settings, NullLogger<RegistryUpstream>.Instance);
        _tokens = NewTokenEndpoint();
        _challenges = new RegistryChallenges(_index.Challenges, _tokens, _time, NullLogger<RegistryChallenges>.Instance);
    }

    private TokenEndpoint NewTokenEndpoint()
    {
        var accessTokens = new AccessTokens(_time);
        var grants = new AccessGrants(RandomNumberGenerator.GetBytes(32), _index.Grants, _index.Visibility, accessTokens, _time, TimeSpan.FromDays(7));
        return new TokenEndpoint(_upstream, accessTokens, grants, _index.Visibility, _time, NullLogger<TokenEndpoint>.Instance);
    }

    public void Dispose()
    {
        _upstream.Dispose();
        _invoker.Dispose();
        _index.Dispose();
        _directory.Dispose();
    }

    private static HttpResponseMessage Answer(HttpStatusCode status, string? challenge = null)
    {
        var response = new HttpResponseMessage(status);
        if (challenge is not null)
        {
            response.Headers.TryAddWithoutValidation("WWW-Authenticate", challenge);
        }

        return response;
    }

    private static InterceptTarget AuthHost => new("auth.docker.io", 443);

    [Fact]
    public void LearnFromRefusal_ManifestChallenge_RegistryPartRememberedAndRealmRouted()
    {
        using var refusal = Answer(HttpStatusCode.Unauthorized,
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\",error=\"insufficient_scope\"");

        _challenges.LearnFromRefusal(Registry, refusal);

        var remembered = _challenges.Find(Registry);
        Assert.NotNull(remembered);
        Assert.Equal("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\"", remembered.WwwAuthenticate);
        Assert.Equal("https://auth.docker.io/token", remembered.Realm);
        Assert.Equal([Registry], _tokens.RegistriesFor(AuthHost, "/token"));
    }

    [Fact]
    public void LearnFromRefusal_RealmAlreadyKnownFromThePing_PingChallengeKept()
    {
        const string ping = "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",extra=\"kept\"";
        using (var pinged = Answer(HttpStatusCode.Unauthorized, ping))
        {
            _challenges.LearnFromPing(Registry, pinged);
        }

        using var refusal = Answer(HttpStatusCode.Unauthorized, "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:a/b:pull\"");
        _challenges.LearnFromRefusal(Registry, refusal);

        Assert.Equal(ping, _challenges.Find(Registry)!.WwwAuthenticate);
    }

    [Theory]
    [InlineData(HttpStatusCode.Forbidden, "Bearer realm=\"https://auth.docker.io/token\"")]
    [InlineData(HttpStatusCode.Unauthorized, "Basic realm=\"Registry\"")]
    [InlineData(HttpStatusCode.Unauthorized, null)]
    public void LearnFromRefusal_NoBearerChallengeOr403_NothingLearned(HttpStatusCode status, string? challenge)
    {
        using var refusal = Answer(status, challenge);

        _challenges.LearnFromRefusal(Registry, refusal);

        Assert.Null(_challenges.Find(Registry));
        Assert.Null(_tokens.RegistriesFor(AuthHost, "/token"));
    }

    [Fact]
    public void LearnFromPing_OpenRegistry_RememberedWithoutChallenge()
    {
        using var open = Answer(HttpStatusCode.OK);

        _challenges.LearnFromPing("mcr.microsoft.com", open);

        var remembered = _challenges.Find("mcr.microsoft.com");
        Assert.NotNull(remembered);
        Assert.Null(remembered.WwwAuthenticate);
    }

    [Theory]
    [InlineData("https://auth.docker.io/token", "registry-1.docker.io", true)]
    [InlineData("https://quay.io/v2/auth", "quay.io", true)]
    [InlineData("https://gcr.io/v2/token", "gcr.io", true)]
    [InlineData("https://auth.test:5001/v2/token", "registry.test:5000", true)] // one segment under another host's /v2/
    [InlineData("https://registry.test:5000/v2/library/app/tags/list", "registry.test:5000", true)] // its own host
    [InlineData("http://auth.docker.io/token", "registry-1.docker.io", false)]
    [InlineData("https://registry.test:5000/v2/library/app/manifests/v1", "evil.test", false)]
    [InlineData("https://registry.test:5000/v2/library/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", "evil.test", false)]
    [InlineData("https://registry.test:5000/v2/library/app/manifests/v1", "registry.test:5000", false)] // a route served from the cache, even its own
    [InlineData("https://registry.test:5000/v2/library/app/tags/list", "evil.test", false)]
    [InlineData("https://registry.test:5000/v2/library/app/blobs/uploads/", "evil.test", false)]
    [InlineData("https://registry.test:5000/V2/library/app/manifests/v1", "evil.test", false)]
    [InlineData("https://registry.test:5000/v2/", "evil.test", false)]
    [InlineData("https://registry.test:5000/v2", "registry.test:5000", false)]
    public void IsHonoured_Realm_OnlyOutsideOtherRegistriesRoutes(string realm, string registry, bool honoured)
    {
        Assert.Equal(honoured, TokenEndpoint.IsHonoured(new Uri(realm), registry));
        Assert.Equal(honoured, _tokens.RegisterRealm(new Uri(realm), registry));
    }

    [Fact]
    public void RegisterRealm_TwoRegistriesNameOneRealm_BothKeepIt()
    {
        var realm = new Uri("https://auth.docker.io/token");
        _tokens.RegisterRealm(realm, Registry);
        _tokens.RegisterRealm(realm, "evil.test");

        Assert.Equal(["evil.test", Registry], _tokens.RegistriesFor(AuthHost, "/token"));

        _tokens.RegisterRealm(new Uri("https://evil.test/token"), "evil.test"); // evil.test moves on
        Assert.Equal([Registry], _tokens.RegistriesFor(AuthHost, "/token"));
    }

    [Fact]
    public void LearnFromPing_ChallengeNamingAnotherRegistrysManifest_RemembredWithoutRealm_NotRoutedAfterRestart()
    {
        const string hijack = "https://registry.test:5000/v2/library/app/manifests/v1";
        using (var pinged = Answer(HttpStatusCode.Unauthorized, $"Bearer realm=\"{hijack}\",service=\"evil\""))
        {
            _challenges.LearnFromPing("evil.test", pinged);
        }

        using (var honest = Answer(HttpStatusCode.Unauthorized, "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\""))
        {
            _challenges.LearnFromPing(Registry, honest);
        }

        // An index written before this rule holds the realm: loading it must not honour it either.
        _index.Challenges.PutChallenge(new ChallengeRecord { Id = "old-evil.test", Realm = hijack, SeenAt = _time.GetUtcNow().UtcDateTime });
        var restarted = NewTokenEndpoint();
        _ = new RegistryChallenges(_index.Challenges, restarted, _time, NullLogger<RegistryChallenges>.Instance);
        var registryHost = new InterceptTarget("registry.test", 5000);

        Assert.Null(_challenges.Find("evil.test")!.Realm);
        Assert.Null(_tokens.RegistriesFor(registryHost, "/v2/library/app/manifests/v1"));
        Assert.Null(restarted.RegistriesFor(registryHost, "/v2/library/app/manifests/v1"));
        Assert.Equal([Registry], restarted.RegistriesFor(AuthHost, "/token")); // an honoured realm is back after the restart
    }

    [Fact]
    public async Task ScopedChallenge_BearerScopedToTheRepository_BasicAsItIs_NoneWhenUnknown()
    {
        using (var bearer = Answer(HttpStatusCode.Unauthorized, "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\""))
        {
            _challenges.LearnFromPing(Registry, bearer);
        }

        using (var basic = Answer(HttpStatusCode.Unauthorized, "Basic realm=\"Registry\""))
        {
            _challenges.LearnFromPing("basic.test", basic);
        }

        Assert.Equal("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"",
            await _challenges.ScopedChallengeAsync(Registry, "library/busybox", CancellationToken.None));
        Assert.Equal("Basic realm=\"Registry\"", await _challenges.ScopedChallengeAsync("basic.test", "library/busybox", CancellationToken.None));
        Assert.Null(await _challenges.ScopedChallengeAsync("unknown.test", "library/busybox", CancellationToken.None));
    }
}
