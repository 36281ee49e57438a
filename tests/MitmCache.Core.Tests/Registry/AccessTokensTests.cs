using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class AccessTokensTests
{
    private static readonly IReadOnlyList<ScopeEntry> s_pull = [new ScopeEntry("repository", "team/app", ["pull"])];
    private static readonly string[] s_registries = ["registry.test"];

    private readonly FakeTimeProvider _time = new();
    private readonly AccessTokens _tokens;

    public AccessTokensTests()
    {
        _tokens = new AccessTokens(_time);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void IsAnonymous_NoAuthorization_True(string? authorization)
    {
        Assert.True(_tokens.IsAnonymous(authorization));
    }

    [Theory]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer some-upstream-token")]
    [InlineData("Bearer ")]
    [InlineData("Token abc")]
    public void IsAnonymous_CredentialNotKnownAnonymous_False(string authorization)
    {
        Assert.False(_tokens.IsAnonymous(authorization));
    }

    [Fact]
    public void RememberAnonymous_SameToken_AnonymousUntilExpiry()
    {
        _tokens.RememberAnonymous("upstream-token", TimeSpan.FromMinutes(10));

        Assert.True(_tokens.IsAnonymous("Bearer upstream-token"));
        Assert.True(_tokens.IsAnonymous("bearer   upstream-token  "));
        Assert.False(_tokens.IsAnonymous("Bearer other-token"));
        Assert.False(_tokens.IsAnonymous("Basic upstream-token"));

        _time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromTicks(1));
        Assert.True(_tokens.IsAnonymous("Bearer upstream-token"));

        _time.Advance(TimeSpan.FromTicks(1));
        Assert.False(_tokens.IsAnonymous("Bearer upstream-token"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-60)]
    public void RememberAnonymous_NonPositiveLifetime_FiveMinutes(int seconds)
    {
        _tokens.RememberAnonymous("t", TimeSpan.FromSeconds(seconds));

        _time.Advance(TimeSpan.FromMinutes(4));
        Assert.True(_tokens.IsAnonymous("Bearer t"));
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.False(_tokens.IsAnonymous("Bearer t"));
    }

    [Fact]
    public void RememberAnonymous_LifetimeOverADay_ClampedToOneDay()
    {
        _tokens.RememberAnonymous("t", TimeSpan.FromDays(30));

        _time.Advance(TimeSpan.FromHours(23));
        Assert.True(_tokens.IsAnonymous("Bearer t"));
        _time.Advance(TimeSpan.FromHours(1));
        Assert.False(_tokens.IsAnonymous("Bearer t"));
    }

    [Fact]
    public void MintLocal_Token_PrefixedUrlSafeAndUnique()
    {
        var first = _tokens.MintLocal(s_pull, credentialKey: null, s_registries, TimeSpan.FromMinutes(5));
        var second = _tokens.MintLocal(s_pull, credentialKey: null, s_registries, TimeSpan.FromMinutes(5));

        Assert.StartsWith(AccessTokens.LocalPrefix, first, StringComparison.Ordinal);
        Assert.NotEqual(first, second);
        Assert.All(first[AccessTokens.LocalPrefix.Length..], c => Assert.True(char.IsAsciiLetterOrDigit(c) || c is '-' or '_', $"unexpected '{c}'"));
        Assert.Equal(43, first.Length - AccessTokens.LocalPrefix.Length); // 32 random bytes, base64url without padding
    }

    [Fact]
    public void FindLocal_MintedToken_ReturnsScopesUntilExpiry()
    {
        var token = _tokens.MintLocal(s_pull, credentialKey: "ABCDEF", s_registries, TimeSpan.FromMinutes(5));

        var local = _tokens.FindLocal("Bearer " + token);

        Assert.NotNull(local);
        Assert.Same(s_pull, local.Scopes);
        Assert.False(local.Anonymous);
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromMinutes(5), local.Expires);

        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.Null(_tokens.FindLocal("Bearer " + token));
    }

    [Fact]
    public void FindLocal_MintedForTheRealmsRegistries_GoodOnlyThere()
    {
        var token = _tokens.MintLocal(s_pull, credentialKey: "ABCDEF", ["registry.test", "mirror.test:5000"], TimeSpan.FromMinutes(5));

        var local = _tokens.FindLocal("Bearer " + token)!;

        Assert.True(local.IsFor("registry.test"));
        Assert.True(local.IsFor("MIRROR.test:5000"));
        Assert.False(local.IsFor("evil.test"));
        Assert.False(local.IsFor("registry.test:5000"));
    }

    [Fact]
    public void FindLocal_UnknownOrForeignToken_Null()
    {
        _tokens.MintLocal(s_pull, credentialKey: null, s_registries, TimeSpan.FromMinutes(5));

        Assert.Null(_tokens.FindLocal(null));
        Assert.Null(_tokens.FindLocal("Bearer " + AccessTokens.LocalPrefix + "forged"));
        Assert.Null(_tokens.FindLocal("Bearer upstream-token"));
        Assert.Null(_tokens.FindLocal("Basic bWl0bWNhY2hlLng="));
    }

    [Fact]
    public void FindLocal_TokenFromAnotherInstance_Null()
    {
        var token = new AccessTokens(_time).MintLocal(s_pull, credentialKey: null, s_registries, TimeSpan.FromMinutes(5));

        Assert.Null(_tokens.FindLocal("Bearer " + token));
        Assert.False(_tokens.IsAnonymous("Bearer " + token));
    }

    [Fact]
    public void IsAnonymous_LocalTokens_FollowTheirAnonymousFlagAndExpiry()
    {
        var anonymous = "Bearer " + _tokens.MintLocal(s_pull, credentialKey: null, s_registries, TimeSpan.FromMinutes(5));
        var personal = "Bearer " + _tokens.MintLocal(s_pull, credentialKey: "ABCDEF", s_registries, TimeSpan.FromMinutes(5));

        Assert.True(_tokens.IsAnonymous(anonymous));
        Assert.False(_tokens.IsAnonymous(personal));

        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(_tokens.IsAnonymous(anonymous));
    }

    [Fact]
    public void IsAnonymous_UpstreamTokenThatLooksLocal_NotTrustedAsAnonymous()
    {
        // Only tokens this instance minted count; remembering a look-alike upstream token must not help.
        _tokens.RememberAnonymous(AccessTokens.LocalPrefix + "abc", TimeSpan.FromMinutes(5));

        Assert.False(_tokens.IsAnonymous("Bearer " + AccessTokens.LocalPrefix + "abc"));
    }

    [Theory]
    [InlineData("Bearer mitmcache.abc", true)]
    [InlineData("bearer mitmcache.abc", true)]
    [InlineData("Bearer  mitmcache.abc ", true)]
    [InlineData("Bearer upstream", false)]
    [InlineData("Basic mitmcache.abc", false)]
    [InlineData("mitmcache.abc", false)]
    [InlineData(null, false)]
    public void IsLocal_Authorization_ReturnsExpected(string? authorization, bool expected)
    {
        Assert.Equal(expected, AccessTokens.IsLocal(authorization));
    }

    [Theory]
    [InlineData("Bearer abc", "abc")]
    [InlineData("BEARER  abc ", "abc")]
    [InlineData("Bearer ", "")]
    [InlineData("Bearer", null)]
    [InlineData("Basic abc", null)]
    [InlineData(null, null)]
    public void BearerToken_Authorization_ReturnsToken(string? authorization, string? expected)
    {
        Assert.Equal(expected, AccessTokens.BearerToken(authorization));
    }
}
