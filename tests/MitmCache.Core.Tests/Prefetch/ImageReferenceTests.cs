using MitmCache.Prefetch;

namespace MitmCache.Core.Tests.Prefetch;

public class ImageReferenceTests
{
    private const string Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    [Theory]
    [InlineData("busybox", "registry-1.docker.io", "library/busybox", "latest", null)]
    [InlineData("busybox:1.36", "registry-1.docker.io", "library/busybox", "1.36", null)]
    [InlineData("bitnami/redis:7", "registry-1.docker.io", "bitnami/redis", "7", null)]
    [InlineData("docker.io/nginx", "registry-1.docker.io", "library/nginx", "latest", null)]
    [InlineData("index.docker.io/library/nginx:1", "registry-1.docker.io", "library/nginx", "1", null)]
    [InlineData("ghcr.io/org/team/app:v2.1", "ghcr.io", "org/team/app", "v2.1", null)]
    [InlineData("registry.test:5000/library/app:v1", "registry.test:5000", "library/app", "v1", null)]
    [InlineData("localhost/app", "localhost", "app", "latest", null)]
    [InlineData("quay.io/x/y@" + Digest, "quay.io", "x/y", null, Digest)]
    [InlineData("quay.io/x/y:pinned@" + Digest, "quay.io", "x/y", "pinned", Digest)]
    [InlineData("  REGISTRY.K8S.IO/pause:3.9  ", "registry.k8s.io", "pause", "3.9", null)]
    public void TryParse_UserSpelling_NormalizedLikeDocker(string text, string registry, string repository, string? tag, string? digest)
    {
        Assert.True(ImageReference.TryParse(text, out var image, out var error), error);

        Assert.Equal(new ImageReference(registry, repository, tag, digest), image);
        Assert.Equal(digest ?? tag, image.Reference);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Busybox")]
    [InlineData("library/busybox:")]
    [InlineData("busybox:bad tag")]
    [InlineData("busybox@sha256:short")]
    [InlineData("busybox@md5:" + "0123456789abcdef0123456789abcdef")]
    [InlineData("ghcr.io/../etc/passwd")]
    [InlineData("ghcr.io/a//b")]
    [InlineData("bad_host.example:99999/app")]
    public void TryParse_Invalid_FalseWithReason(string text)
    {
        Assert.False(ImageReference.TryParse(text, out _, out var error));
        Assert.NotEmpty(error);
    }
}
