using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class MediaTypesTests
{
    [Theory]
    [InlineData(MediaTypes.OciIndex, true)]
    [InlineData(MediaTypes.DockerManifestList, true)]
    [InlineData("application/vnd.OCI.image.index.v1+json", true)]
    [InlineData(" application/vnd.oci.image.index.v1+json ; charset=utf-8", true)]
    [InlineData(MediaTypes.OciManifest, false)]
    [InlineData(MediaTypes.DockerManifest, false)]
    [InlineData(MediaTypes.OciLayerGzip, false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void IsIndex_MediaType_ReturnsExpected(string? mediaType, bool expected)
    {
        Assert.Equal(expected, MediaTypes.IsIndex(mediaType));
    }

    [Theory]
    [InlineData(MediaTypes.OciIndex, true)]
    [InlineData(MediaTypes.OciManifest, true)]
    [InlineData(MediaTypes.DockerManifest, true)]
    [InlineData(MediaTypes.DockerManifestList, true)]
    [InlineData(MediaTypes.DockerManifestV1Signed, true)]
    [InlineData(MediaTypes.OciConfig, false)]
    [InlineData(MediaTypes.DockerLayer, false)]
    [InlineData("application/json", false)]
    [InlineData(null, false)]
    public void IsManifest_MediaType_ReturnsExpected(string? mediaType, bool expected)
    {
        Assert.Equal(expected, MediaTypes.IsManifest(mediaType));
    }

    [Theory]
    [InlineData(new[] { "b/b, a/a" }, "a/a,b/b")]
    [InlineData(new[] { "a/a, b/b" }, "a/a,b/b")]
    [InlineData(new[] { "b/b;q=0.5, a/a;q=0.9" }, "a/a,b/b")]
    [InlineData(new[] { "A/A ; q=1", "a/a" }, "a/a")]
    [InlineData(new[] { "b/b", "a/a", "b/b" }, "a/a,b/b")]
    [InlineData(new[] { " , ,a/a,, " }, "a/a")]
    [InlineData(new string[0], "")]
    [InlineData(new[] { "" }, "")]
    [InlineData(new[] { "*/*" }, "*/*")]
    [InlineData(
        new[]
        {
            "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.distribution.manifest.v2+json;q=0.9,application/vnd.oci.image.manifest.v1+json",
        },
        "application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.docker.distribution.manifest.v2+json,"
        + "application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json")]
    public void AcceptKey_Headers_ReturnsNormalizedKey(string[] headers, string expected)
    {
        Assert.Equal(expected, MediaTypes.AcceptKey(headers));
    }

    [Fact]
    public void AcceptKey_NullHeaderValues_AreSkipped()
    {
        Assert.Equal("a/a", MediaTypes.AcceptKey([null, "a/a", null]));
    }

    [Fact]
    public void AcceptKey_DifferentOrderAndSplit_GiveSameKey()
    {
        var one = MediaTypes.AcceptKey([$"{MediaTypes.OciIndex}, {MediaTypes.DockerManifest}"]);
        var two = MediaTypes.AcceptKey([MediaTypes.DockerManifest, MediaTypes.OciIndex]);

        Assert.Equal(one, two);
    }

    [Theory]
    [InlineData(new string[0], MediaTypes.OciIndex, true)]
    [InlineData(new[] { "" }, MediaTypes.OciIndex, true)]
    [InlineData(new[] { "*/*" }, MediaTypes.OciIndex, true)]
    [InlineData(new[] { "text/plain, */*;q=0.1" }, MediaTypes.OciIndex, true)]
    [InlineData(new[] { "application/*" }, MediaTypes.OciIndex, true)]
    [InlineData(new[] { MediaTypes.DockerManifest, MediaTypes.OciIndex }, MediaTypes.OciIndex, true)]
    [InlineData(new[] { "APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON;q=0.5" }, MediaTypes.OciIndex, true)]
    [InlineData(new[] { MediaTypes.DockerManifest }, MediaTypes.OciIndex, false)]
    [InlineData(new[] { "text/*" }, MediaTypes.OciIndex, false)]
    [InlineData(new[] { MediaTypes.DockerManifest + ", " + MediaTypes.DockerManifestList }, MediaTypes.OciIndex, false)]
    public void Accepts_Headers_ReturnsExpected(string[] headers, string mediaType, bool expected)
    {
        Assert.Equal(expected, MediaTypes.Accepts(headers, mediaType));
    }
}
