using System.Net;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public sealed class RegistryAuthorizerTests
{
    private const string Registry = "registry.test:5000";
    private static readonly Digest s_digest = Digest.Compute("layer"u8);
    private static readonly Digest s_other = Digest.Compute("other"u8);

    private static HttpResponseMessage Answer(HttpStatusCode status, string from, long? length, Digest? digest)
    {
        var response = new HttpResponseMessage(status)
        {
            Content = new ByteArrayContent([]),
            RequestMessage = new HttpRequestMessage(HttpMethod.Head, $"https://{from}/some/path"),
        };
        response.Content.Headers.ContentLength = length;
        if (digest is { } d)
        {
            response.Headers.TryAddWithoutValidation("Docker-Content-Digest", d.ToString());
        }

        return response;
    }

    [Fact]
    public void Confirms_RegistrysOwn200WithSizeAndDigest_True()
    {
        using var answer = Answer(HttpStatusCode.OK, Registry, 5, s_digest);

        Assert.True(RegistryAuthorizer.Confirms(answer, Registry, s_digest, 5));
    }

    [Fact]
    public void Confirms_StorageAfterARedirectWithoutDigestButRightSize_True()
    {
        using var answer = Answer(HttpStatusCode.OK, "cdn.test:8443", 5, digest: null);

        Assert.True(RegistryAuthorizer.Confirms(answer, Registry, s_digest, 5));
    }

    [Theory]
    [InlineData(HttpStatusCode.TemporaryRedirect)] // a 3xx is never proof
    [InlineData(HttpStatusCode.Found)]
    [InlineData(HttpStatusCode.NoContent)]
    [InlineData(HttpStatusCode.PartialContent)]
    [InlineData(HttpStatusCode.Unauthorized)]
    public void Confirms_NotA200_False(HttpStatusCode status)
    {
        using var answer = Answer(status, Registry, 5, s_digest);

        Assert.False(RegistryAuthorizer.Confirms(answer, Registry, s_digest, 5));
    }

    [Fact]
    public void Confirms_WrongSizeOrDigest_False()
    {
        using var shorter = Answer(HttpStatusCode.OK, Registry, 4, s_digest);
        using var unsized = Answer(HttpStatusCode.OK, Registry, null, s_digest);
        using var other = Answer(HttpStatusCode.OK, Registry, 5, s_other);
        using var otherFromCdn = Answer(HttpStatusCode.OK, "cdn.test:8443", 5, s_other);

        Assert.False(RegistryAuthorizer.Confirms(shorter, Registry, s_digest, 5));
        Assert.False(RegistryAuthorizer.Confirms(unsized, Registry, s_digest, 5));
        Assert.False(RegistryAuthorizer.Confirms(other, Registry, s_digest, 5));
        Assert.False(RegistryAuthorizer.Confirms(otherFromCdn, Registry, s_digest, 5));
    }

    [Fact]
    public void Confirms_RegistryItselfWithoutDigest_False()
    {
        using var answer = Answer(HttpStatusCode.OK, Registry, 5, digest: null);

        Assert.False(RegistryAuthorizer.Confirms(answer, Registry, s_digest, 5));
    }

    [Fact]
    public void Confirms_SizeNotKnownYet_DigestDecides()
    {
        using var named = Answer(HttpStatusCode.OK, Registry, 123, s_digest);
        using var other = Answer(HttpStatusCode.OK, Registry, 123, s_other);

        Assert.True(RegistryAuthorizer.Confirms(named, Registry, s_digest, size: null));
        Assert.False(RegistryAuthorizer.Confirms(other, Registry, s_digest, size: null));
    }
}
