using Microsoft.AspNetCore.Http;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

public sealed class HeaderRulesTests
{
    [Fact]
    public void CreateRequest_ConnectionNamesHeaders_DropsExactlyThoseAndHopByHop()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "GET";
        context.Request.Headers.Connection = "accept-encoding, X-Custom";
        context.Request.Headers.Accept = "application/vnd.oci.image.manifest.v1+json";
        context.Request.Headers["X-Custom"] = "1";
        context.Request.Headers["Proxy-Authorization"] = "Basic c2VjcmV0";
        context.Request.Headers.Authorization = "Bearer token";
        context.Request.Headers.TE = "trailers";

        using var message = HeaderRules.CreateRequest(context.Request, new Uri("https://registry.test/v2/"), forwardBody: false);

        Assert.Equal("application/vnd.oci.image.manifest.v1+json", message.Headers.Accept.Single().ToString());
        Assert.Equal("Bearer token", message.Headers.Authorization!.ToString());
        Assert.False(message.Headers.Contains("X-Custom"));
        Assert.False(message.Headers.Contains("Proxy-Authorization"));
        Assert.False(message.Headers.Contains("Connection"));
        Assert.False(message.Headers.Contains("TE"));
    }

    [Fact]
    public void CopyResponseHead_HopByHopNotCopied_ContentHeadersAre()
    {
        using var upstream = new HttpResponseMessage(System.Net.HttpStatusCode.Unauthorized) { Content = new ByteArrayContent([1, 2, 3]) };
        upstream.Headers.TryAddWithoutValidation("WWW-Authenticate", "Bearer realm=\"https://auth.test/token\"");
        upstream.Headers.TryAddWithoutValidation("Connection", "close");
        upstream.Headers.TryAddWithoutValidation("Alt-Svc", "h3=\":443\"");
        upstream.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var context = new DefaultHttpContext();

        HeaderRules.CopyResponseHead(upstream, context.Response);

        Assert.Equal(401, context.Response.StatusCode);
        Assert.Equal("Bearer realm=\"https://auth.test/token\"", context.Response.Headers.WWWAuthenticate.ToString());
        Assert.Equal("application/json", context.Response.ContentType);
        Assert.False(context.Response.Headers.ContainsKey("Connection"));
        Assert.False(context.Response.Headers.ContainsKey("Alt-Svc"));
    }
}
