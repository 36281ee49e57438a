using MitmCache.ObjectStore;
using MitmCache.Registry;

namespace MitmCache.Core.Tests.ObjectStore;

public sealed class ObjectLayoutTests
{
    private static readonly Digest s_digest = Digest.Compute("x"u8);

    [Theory]
    [InlineData("", "blobs/sha256/")]
    [InlineData("cluster/a", "cluster/a/blobs/sha256/")]
    public void BlobKey_IsTheLocalLayoutUnderThePrefix(string prefix, string start)
    {
        Assert.Equal($"{start}{s_digest.Hex[..2]}/{s_digest.Hex}", new ObjectLayout(prefix).BlobKey(s_digest));
    }

    [Fact]
    public void TagKey_ValidNames_AreKeyedByRegistryRepositoryAndTag()
    {
        Assert.Equal("p/repositories/registry.test:5000/team/app/_tags/v1.0", new ObjectLayout("p").TagKey("registry.test:5000", "team/app", "v1.0"));
    }

    [Theory]
    [InlineData("registry.test", "team/../app", "v1")]
    [InlineData("registry.test", "_tags", "v1")]
    [InlineData("registry.test", "app", "../../blobs")]
    [InlineData("Registry.Test", "app", "v1")]
    [InlineData("registry.test/x", "app", "v1")]
    [InlineData("[::1]:5000", "app", "v1")]
    public void TagKey_NamesOutsideTheGrammar_AreNull(string registry, string repository, string tag)
    {
        Assert.Null(new ObjectLayout("p").TagKey(registry, repository, tag));
    }
}
