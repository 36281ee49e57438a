using System.Text;
using Microsoft.AspNetCore.Http;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public sealed class TokenCredentialTests
{
    private static string? Of(string method, string query = "", string? form = null, string? contentType = null, string? authorization = null, string? cookie = null)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = method;
        context.Request.QueryString = new QueryString(query);
        if (authorization is not null)
        {
            context.Request.Headers.Authorization = authorization;
        }

        if (cookie is not null)
        {
            context.Request.Headers.Cookie = cookie;
        }

        var body = form is null ? [] : Encoding.UTF8.GetBytes(form);
        context.Request.ContentType = form is null ? null : contentType ?? "application/x-www-form-urlencoded";
        return TokenCredential.Of(context.Request, body);
    }

    private static string Basic(string userAndSecret) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(userAndSecret));

    [Theory]
    [InlineData("?service=registry.docker.io&scope=repository:library/busybox:pull")]
    [InlineData("?service=x&scope=repository:a:pull&scope=repository:b:pull&client_id=docker&offline_token=false")]
    [InlineData("")]
    public void Of_GetWithNothingSecret_Anonymous(string query)
    {
        Assert.Null(Of("GET", query));
    }

    [Fact]
    public void Of_AuthorizationHeader_IsTheCredential()
    {
        Assert.Equal(Basic("alice:pw"), Of("GET", "?service=x", authorization: Basic("alice:pw")));
        Assert.Equal("Bearer some-identity-token", Of("GET", authorization: "Bearer some-identity-token"));
    }

    [Fact]
    public void Of_PasswordGrant_KeyedLikeTheBasicFallback()
    {
        var post = Of("POST", form: "grant_type=password&username=alice&password=pw&service=x&scope=repository:a:pull&client_id=containerd-client");

        Assert.Equal(Basic("alice:pw"), post);
    }

    [Fact]
    public void Of_RefreshTokenGrant_KeyedLikeContainerdsBasicFallbackWithoutUser()
    {
        var post = Of("POST", form: "grant_type=refresh_token&refresh_token=R-123&service=x&scope=repository:a:pull&client_id=containerd-client");

        Assert.Equal(Basic(":R-123"), post);
        Assert.NotEqual(Of("POST", form: "grant_type=refresh_token&refresh_token=R-456&service=x"), post);
    }

    [Theory]
    [InlineData("grant_type=client_credentials&client_id=ci&client_secret=s3cret")]
    [InlineData("grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=eyJhbGciOi")]
    [InlineData("grant_type=client_credentials&client_id=ci")] // a grant of its own kind, even without a secret field
    [InlineData("grant_type=password&username=alice")] // no password: the rest is still no proof of anonymity
    [InlineData("service=x&scope=repository:a:pull&api_key=k")]
    public void Of_AnyOtherGrantOrSecretField_Credentialed(string form)
    {
        Assert.NotNull(Of("POST", form: form));
    }

    [Fact]
    public void Of_DifferentSecrets_DifferentCredentials()
    {
        Assert.NotEqual(Of("POST", form: "grant_type=client_credentials&client_id=ci&client_secret=a"), Of("POST", form: "grant_type=client_credentials&client_id=ci&client_secret=b"));
        Assert.NotEqual(Of("GET", "?access_token=a"), Of("GET", "?access_token=b"));
    }

    [Theory]
    [InlineData("?service=x&access_token=abc")]
    [InlineData("?scope=repository:a:pull&password=abc")]
    public void Of_UnknownQueryField_Credentialed(string query)
    {
        Assert.NotNull(Of("GET", query));
    }

    [Fact]
    public void Of_CookieOrNonFormBody_Credentialed()
    {
        Assert.NotNull(Of("GET", "?service=x", cookie: "session=abc"));
        Assert.NotNull(Of("POST", form: "{\"refresh_token\":\"R\"}", contentType: "application/json"));
        Assert.NotNull(Of("POST"));
    }
}
