using MitmCache.Registry;

namespace MitmCache.Core.Tests.Registry;

public class RegistryRouteTests
{
    private const string Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    private const string Sha = "sha256:" + Hex;

    [Theory]
    [InlineData("/v2/")]
    [InlineData("/v2")]
    public void Parse_VersionCheck_ReturnsPing(string path)
    {
        Assert.Same(PingRoute.Instance, RegistryRoute.Parse(path));
    }

    [Theory]
    [InlineData("/v2/library/busybox/manifests/latest", "library/busybox", "latest")]
    [InlineData("/v2/a/b/c/manifests/x", "a/b/c", "x")]
    [InlineData("/v2/busybox/manifests/1.36.1-glibc", "busybox", "1.36.1-glibc")]
    [InlineData("/v2/my-org/my_app.v2/manifests/_Tag.With-Mixed_Case", "my-org/my_app.v2", "_Tag.With-Mixed_Case")]
    [InlineData("/v2/a__b/c---d/manifests/v1", "a__b/c---d", "v1")]
    [InlineData("/v2/x/manifests/manifests/y", "x/manifests", "y")]
    [InlineData("/v2/x/blobs/manifests/uploads", "x/blobs", "uploads")]
    public void Parse_ManifestByTag_ReturnsManifestWithTag(string path, string name, string tag)
    {
        var route = Assert.IsType<ManifestRoute>(RegistryRoute.Parse(path));

        Assert.Equal(name, route.Name);
        Assert.Equal(tag, route.Reference);
        Assert.Equal(tag, route.Tag);
        Assert.Null(route.Digest);
    }

    [Fact]
    public void Parse_ManifestByDigest_ReturnsManifestWithDigest()
    {
        var route = Assert.IsType<ManifestRoute>(RegistryRoute.Parse("/v2/library/busybox/manifests/" + Sha));

        Assert.Equal("library/busybox", route.Name);
        Assert.Equal(Sha, route.Reference);
        Assert.Equal(new Digest("sha256", Hex), route.Digest);
        Assert.Null(route.Tag);
    }

    [Theory]
    [InlineData("/v2/library/busybox/blobs/" + Sha, "library/busybox")]
    [InlineData("/v2/a/b/c/blobs/" + Sha, "a/b/c")]
    [InlineData("/v2/x/blobs/blobs/" + Sha, "x/blobs")]
    public void Parse_BlobByDigest_ReturnsBlob(string path, string name)
    {
        var route = Assert.IsType<BlobRoute>(RegistryRoute.Parse(path));

        Assert.Equal(name, route.Name);
        Assert.Equal(Sha, route.Digest.ToString());
    }

    [Theory]
    [InlineData("/v2/_catalog")]
    [InlineData("/v2/library/busybox/tags/list")]
    [InlineData("/v2/library/busybox/blobs/uploads")]
    [InlineData("/v2/library/busybox/blobs/uploads/")]
    [InlineData("/v2/library/busybox/blobs/uploads/6f2d7c1e-1b8e-4d4a-9d1e-2f3c4b5a6978")]
    [InlineData("/v2/library/busybox/blobs/uploads/abc%3D%3D")]
    [InlineData("/v2/library/busybox/referrers/" + Sha)]
    [InlineData("/v2/library/busybox/manifests/latest/")]
    [InlineData("/v2/manifests/latest")]
    [InlineData("/v2/busybox")]
    public void Parse_OtherRegistryPath_ReturnsOther(string path)
    {
        Assert.Same(OtherRoute.Instance, RegistryRoute.Parse(path));
    }

    [Theory]
    [InlineData("/v2/../etc/passwd")]
    [InlineData("/v2/a/../blobs/" + Sha)]
    [InlineData("/v2/./a/manifests/x")]
    [InlineData("/v2/a/./manifests/x")]
    [InlineData("/v2/a/b/..")]
    [InlineData("/v2/a/blobs/sha256:../..")]
    [InlineData("/v2/a\\b/manifests/x")]
    [InlineData("/v2/a/manifests/x\\..\\y")]
    [InlineData("/v2//x/manifests/y")]
    [InlineData("/v2/x//manifests/y")]
    [InlineData("/v2/x/manifests//y")]
    [InlineData("/v2//")]
    [InlineData("/v2/a/manifests/x\0")]
    [InlineData("/v2/a\0b/manifests/x")]
    [InlineData("/v2/a/manifests/x\r\n")]
    [InlineData("/v2/a/manifests/x y")]
    [InlineData("/v2/a\tb/tags/list")]
    [InlineData("/v2/caf\u00e9/manifests/x")]
    [InlineData("/v2/a/manifests/\uff0e\uff0e")]
    [InlineData("/v2/a\x7f/manifests/x")]
    [InlineData("/v2/a%2fb/manifests/x")]
    [InlineData("/v2/a%2Fb/manifests/x")]
    [InlineData("/v2/a/%2e%2e/blobs/" + Sha)]
    [InlineData("/v2/%2e%2e/manifests/x")]
    [InlineData("/v2/Library/busybox/manifests/latest")]
    [InlineData("/v2/-a/manifests/x")]
    [InlineData("/v2/a-/manifests/x")]
    [InlineData("/v2/a___b/manifests/x")]
    [InlineData("/v2/a._b/manifests/x")]
    [InlineData("/v2/a/blobs/sha256%3A" + Hex)]
    [InlineData("/v2/a/manifests/sha256%3A" + Hex)]
    [InlineData("/v2/a/manifests/x%20y")]
    [InlineData("/v1/_ping")]
    [InlineData("/v2x/a/manifests/x")]
    [InlineData("")]
    [InlineData("v2/a/manifests/x")]
    public void Parse_HostileOrMalformedPath_ReturnsInvalid(string path)
    {
        Assert.IsType<InvalidRoute>(RegistryRoute.Parse(path));
    }

    [Theory]
    [InlineData("/v2/a%2fb/manifests/x")]
    [InlineData("/v2/a/%2e%2e/blobs/" + Sha)]
    [InlineData("/v2/Library/busybox/manifests/latest")]
    [InlineData("/v2/a--/blobs/" + Sha)]
    [InlineData("/v2/a..b/manifests/x")]
    public void Parse_BadName_ReturnsNameInvalid(string path)
    {
        var route = Assert.IsType<InvalidRoute>(RegistryRoute.Parse(path));

        Assert.Equal(RegistryErrorCode.NameInvalid, route.ErrorCode);
    }

    [Fact]
    public void Parse_NameAtLengthLimit_ReturnsManifest()
    {
        var name = new string('a', 127) + "/" + new string('b', 127);
        Assert.Equal(255, name.Length);

        var route = Assert.IsType<ManifestRoute>(RegistryRoute.Parse($"/v2/{name}/manifests/x"));

        Assert.Equal(name, route.Name);
    }

    [Fact]
    public void Parse_NameOverLengthLimit_ReturnsNameInvalid()
    {
        var name = new string('a', 128) + "/" + new string('b', 127);

        var route = Assert.IsType<InvalidRoute>(RegistryRoute.Parse($"/v2/{name}/manifests/x"));

        Assert.Equal(RegistryErrorCode.NameInvalid, route.ErrorCode);
    }

    [Theory]
    [InlineData("/v2/a/blobs/sha256:" + "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")]
    [InlineData("/v2/a/blobs/sha384:" + Hex)]
    [InlineData("/v2/a/blobs/sha256:abc")]
    [InlineData("/v2/a/blobs/sha256:..")]
    [InlineData("/v2/a/blobs/latest")]
    [InlineData("/v2/a/blobs/sha256%3A" + Hex)]
    [InlineData("/v2/a/manifests/sha256:abc")]
    [InlineData("/v2/a/manifests/sha1:" + Hex)]
    [InlineData("/v2/a/manifests/sha256:" + Hex + "0")]
    public void Parse_BadDigest_ReturnsDigestInvalid(string path)
    {
        var route = Assert.IsType<InvalidRoute>(RegistryRoute.Parse(path));

        Assert.Equal(RegistryErrorCode.DigestInvalid, route.ErrorCode);
    }

    [Theory]
    [InlineData("/v2/a/manifests/.latest")]
    [InlineData("/v2/a/manifests/-latest")]
    [InlineData("/v2/a/manifests/x%20y")]
    [InlineData("/v2/a/manifests/%2e%2e")]
    [InlineData("/v2/a/manifests/tag+plus")]
    public void Parse_BadTag_ReturnsTagInvalid(string path)
    {
        var route = Assert.IsType<InvalidRoute>(RegistryRoute.Parse(path));

        Assert.Equal(RegistryErrorCode.TagInvalid, route.ErrorCode);
    }

    [Fact]
    public void Parse_TagAtLengthLimit_ReturnsManifest()
    {
        var tag = new string('t', 128);

        var route = Assert.IsType<ManifestRoute>(RegistryRoute.Parse("/v2/a/manifests/" + tag));

        Assert.Equal(tag, route.Tag);
    }

    [Fact]
    public void Parse_OverlongTag_ReturnsTagInvalid()
    {
        var route = Assert.IsType<InvalidRoute>(RegistryRoute.Parse("/v2/a/manifests/" + new string('t', 129)));

        Assert.Equal(RegistryErrorCode.TagInvalid, route.ErrorCode);
    }

    [Theory]
    [InlineData("library/busybox\n")]
    [InlineData("a/")]
    [InlineData("/a")]
    [InlineData("")]
    public void IsValidName_TrailingNewlineOrEmptyComponent_ReturnsFalse(string name)
    {
        Assert.False(RepositoryGrammar.IsValidName(name));
    }

    [Theory]
    [InlineData("latest\n")]
    [InlineData("")]
    public void IsValidTag_TrailingNewlineOrEmpty_ReturnsFalse(string tag)
    {
        Assert.False(RepositoryGrammar.IsValidTag(tag));
    }
}
