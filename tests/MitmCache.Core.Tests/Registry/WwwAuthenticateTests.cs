using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class WwwAuthenticateTests
{
    [Fact]
    public void TryParseBearer_DockerHubHeader_ReturnsRealmServiceScope()
    {
        const string header =
            "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"";

        Assert.True(WwwAuthenticate.TryParseBearer(header, out var challenge));

        Assert.Equal(new Uri("https://auth.docker.io/token"), challenge.Realm);
        Assert.Equal("registry.docker.io", challenge.Service);
        Assert.Equal("repository:library/busybox:pull", challenge.Scope);
        Assert.Null(challenge.Error);
    }

    [Theory]
    [InlineData("bearer realm=\"https://r.example/t\"")]
    [InlineData("BEARER realm=\"https://r.example/t\"")]
    [InlineData("Bearer REALM=\"https://r.example/t\"")]
    [InlineData("  Bearer   realm = \"https://r.example/t\"  ")]
    [InlineData("Bearer realm=https://r.example/t")]
    [InlineData("Bearer realm=\"https://r.example/t\",")]
    [InlineData("Basic realm=\"basic\", Bearer realm=\"https://r.example/t\"")]
    [InlineData("Bearer realm=\"https://r.example/t\", Basic realm=\"other\"")]
    [InlineData("Bearer realm=\"https://r\\.example/t\"")]
    public void TryParseBearer_Variants_ReturnsRealm(string header)
    {
        Assert.True(WwwAuthenticate.TryParseBearer(header, out var challenge));

        Assert.Equal(new Uri("https://r.example/t"), challenge.Realm);
    }

    [Fact]
    public void TryParseBearer_EscapesAndCommasInQuotes_AreUnescaped()
    {
        const string header =
            "Bearer realm=\"https://r.example/t\", service=\"a \\\"quoted\\\" \\\\ svc\", scope=\"repository:a:pull,push repository:b:pull\", error=\"insufficient_scope\"";

        Assert.True(WwwAuthenticate.TryParseBearer(header, out var challenge));

        Assert.Equal("a \"quoted\" \\ svc", challenge.Service);
        Assert.Equal("repository:a:pull,push repository:b:pull", challenge.Scope);
        Assert.Equal("insufficient_scope", challenge.Error);
    }

    [Fact]
    public void TryParseBearer_OnlyRealm_LeavesOthersNull()
    {
        Assert.True(WwwAuthenticate.TryParseBearer("Bearer realm=\"http://127.0.0.1:5001/auth\"", out var challenge));

        Assert.Equal(new Uri("http://127.0.0.1:5001/auth"), challenge.Realm);
        Assert.Null(challenge.Service);
        Assert.Null(challenge.Scope);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Bearer")]
    [InlineData("Bearer abc.def.ghi")]
    [InlineData("Basic realm=\"https://r.example/t\"")]
    [InlineData("Bearerx realm=\"https://r.example/t\"")]
    [InlineData("Bearer service=\"registry.docker.io\"")]
    [InlineData("Bearer realm=\"\"")]
    [InlineData("Bearer realm=\"/relative/token\"")]
    [InlineData("Bearer realm=\"file:///etc/passwd\"")]
    [InlineData("Bearer realm=\"ftp://r.example/t\"")]
    [InlineData("Bearer realm=\"https://r.example/t")]
    [InlineData("Bearer realm=\"https://r.example/t\\")]
    [InlineData("Bearer realm=\"https://r.example/t\" service=\"x\"")]
    [InlineData("Bearer realm=\"https://r.example/t\",realm=\"https://evil.example/t\"")]
    [InlineData("Bearer realm=")]
    [InlineData("Bearer =\"https://r.example/t\"")]
    [InlineData("Bearer realm=\"https://r.example/\u0001t\"")]
    [InlineData("realm=\"https://r.example/t\"")]
    public void TryParseBearer_MalformedOrNotBearer_ReturnsFalse(string? header)
    {
        Assert.False(WwwAuthenticate.TryParseBearer(header, out var challenge));
        Assert.Null(challenge);
    }

    [Fact]
    public void ParseScopes_SingleRepositoryScope_ReturnsEntry()
    {
        var scopes = WwwAuthenticate.ParseScopes(["repository:team/app:pull,push"]);

        var scope = Assert.Single(scopes);
        Assert.Equal("repository", scope.Type);
        Assert.Equal("team/app", scope.Name);
        Assert.Equal(["pull", "push"], scope.Actions);
        Assert.Equal("repository:team/app:pull,push", scope.ToString());
    }

    [Fact]
    public void ParseScopes_SpaceSeparatedAndSeveralParams_ReturnsAllInOrder()
    {
        var scopes = WwwAuthenticate.ParseScopes(
            ["repository:a:pull repository:b:pull,push", null, "registry:catalog:*", "  repository:c:push  "]);

        Assert.Equal(
            ["repository:a:pull", "repository:b:pull,push", "registry:catalog:*", "repository:c:push"],
            scopes.Select(s => s.ToString()));
    }

    [Theory]
    [InlineData("repository(plugin):vieux/sshfs:pull", "repository(plugin)", "vieux/sshfs", "pull")]
    [InlineData("repository:localhost:5000/foo/bar:pull", "repository", "localhost:5000/foo/bar", "pull")]
    [InlineData("repository:library/busybox:pull,pull,push", "repository", "library/busybox", "pull,push")]
    [InlineData("repository:a:delete", "repository", "a", "delete")]
    public void TryParseScope_Valid_ReturnsParts(string text, string type, string name, string actions)
    {
        Assert.True(WwwAuthenticate.TryParseScope(text, out var scope));

        Assert.Equal(type, scope.Type);
        Assert.Equal(name, scope.Name);
        Assert.Equal(actions.Split(','), scope.Actions);
    }

    [Theory]
    [InlineData("")]
    [InlineData("repository")]
    [InlineData("repository:a")]
    [InlineData(":a:pull")]
    [InlineData("repository::pull")]
    [InlineData("repository:a:")]
    [InlineData("repository:a:pull,")]
    [InlineData("repository:a:Pull")]
    [InlineData("Repository:a:pull")]
    [InlineData("repository():a:pull")]
    [InlineData("repository(plugin:a:pull")]
    [InlineData("repository:a\tb:pull")]
    [InlineData("repository:caf\u00e9:pull")]
    public void TryParseScope_Malformed_ReturnsFalse(string text)
    {
        Assert.False(WwwAuthenticate.TryParseScope(text, out var scope));
        Assert.Null(scope);
    }

    [Fact]
    public void ParseScopes_MalformedEntries_AreSkipped()
    {
        var scopes = WwwAuthenticate.ParseScopes(["bogus repository:a:pull repository::x"]);

        Assert.Equal("repository:a:pull", Assert.Single(scopes).ToString());
    }
}
