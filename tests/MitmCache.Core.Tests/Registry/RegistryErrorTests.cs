using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class RegistryErrorTests
{
    [Theory]
    [InlineData(RegistryErrorCode.BlobUnknown, 404)]
    [InlineData(RegistryErrorCode.BlobUploadUnknown, 404)]
    [InlineData(RegistryErrorCode.ManifestUnknown, 404)]
    [InlineData(RegistryErrorCode.NameUnknown, 404)]
    [InlineData(RegistryErrorCode.BlobUploadInvalid, 400)]
    [InlineData(RegistryErrorCode.DigestInvalid, 400)]
    [InlineData(RegistryErrorCode.ManifestBlobUnknown, 400)]
    [InlineData(RegistryErrorCode.ManifestInvalid, 400)]
    [InlineData(RegistryErrorCode.ManifestUnverified, 400)]
    [InlineData(RegistryErrorCode.NameInvalid, 400)]
    [InlineData(RegistryErrorCode.SizeInvalid, 400)]
    [InlineData(RegistryErrorCode.TagInvalid, 400)]
    [InlineData(RegistryErrorCode.Unauthorized, 401)]
    [InlineData(RegistryErrorCode.Denied, 403)]
    [InlineData(RegistryErrorCode.Unsupported, 405)]
    [InlineData(RegistryErrorCode.TooManyRequests, 429)]
    [InlineData(RegistryErrorCode.Unavailable, 503)]
    [InlineData(RegistryErrorCode.Unknown, 500)]
    [InlineData("SOMETHING_ELSE", 500)]
    public void StatusCodeFor_Code_ReturnsSpecStatus(string code, int expected)
    {
        Assert.Equal(expected, RegistryError.StatusCodeFor(code));
    }

    [Fact]
    public void CreateBody_WithoutDetail_OmitsDetail()
    {
        var body = Encoding.UTF8.GetString(RegistryError.CreateBody("BLOB_UNKNOWN", "blob unknown to registry"));

        Assert.Equal("""{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}""", body);
    }

    [Fact]
    public void CreateBody_HostileText_IsEscapedJson()
    {
        var message = "quote \" backslash \\ newline \n </script>";

        var body = RegistryError.CreateBody("NAME_INVALID", message, "detail \u0000");

        using var json = JsonDocument.Parse(body);
        var error = json.RootElement.GetProperty("errors")[0];
        Assert.Equal("NAME_INVALID", error.GetProperty("code").GetString());
        Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Equal("detail \u0000", error.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task WriteAsync_Get_SetsStatusHeadersAndBody()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Get;
        using var body = new MemoryStream();
        context.Response.Body = body;

        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.ManifestUnknown, "manifest unknown", CancellationToken.None);

        Assert.Equal(404, context.Response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", context.Response.ContentType);
        Assert.Equal("registry/2.0", context.Response.Headers["Docker-Distribution-API-Version"]);
        Assert.Equal(body.Length, context.Response.ContentLength);
        Assert.Equal(
            """{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}""",
            Encoding.UTF8.GetString(body.ToArray()));
    }

    [Fact]
    public async Task WriteAsync_Head_SetsHeadersWithoutBody()
    {
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Head;
        using var body = new MemoryStream();
        context.Response.Body = body;

        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.BlobUnknown, "blob unknown", CancellationToken.None);

        Assert.Equal(404, context.Response.StatusCode);
        Assert.True(context.Response.ContentLength > 0);
        Assert.Equal(0, body.Length);
    }

    [Fact]
    public async Task WriteAsync_WithDetail_WritesDetail()
    {
        var context = new DefaultHttpContext();
        using var body = new MemoryStream();
        context.Response.Body = body;

        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.DigestInvalid, "bad", "sha256:x", CancellationToken.None);

        using var json = JsonDocument.Parse(body.ToArray());
        Assert.Equal("sha256:x", json.RootElement.GetProperty("errors")[0].GetProperty("detail").GetString());
        Assert.Equal(400, context.Response.StatusCode);
    }
}
