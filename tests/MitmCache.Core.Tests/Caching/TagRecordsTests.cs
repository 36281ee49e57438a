using MitmCache.Caching;
using MitmCache.Core.Tests.Certificates;
using static MitmCache.Core.Tests.Caching.IndexKeys;

namespace MitmCache.Core.Tests.Caching;

public sealed class TagRecordsTests : IDisposable
{
    private readonly TempDirectory _directory = new();
    private readonly TestIndex _index;

    public TagRecordsTests() => _index = new TestIndex(_directory.Combine("index.db"));

    public void Dispose()
    {
        _index.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public void PutTag_SameTagTwoAcceptSets_BothFoundAndDeletedByDigest()
    {
        var key = TagRecord.MakeTagKey("registry.test", "team/app", "latest");
        _index.Tags.PutTag(new TagRecord { TagKey = key, AcceptKey = "oci", Digest = "sha256:a" });
        _index.Tags.PutTag(new TagRecord { TagKey = key, AcceptKey = "docker", Digest = "sha256:b" });
        _index.Tags.PutTag(new TagRecord { TagKey = key, AcceptKey = "oci", Digest = "sha256:c" }); // replaces the first

        Assert.Equal(["sha256:b", "sha256:c"], _index.Tags.FindTags("registry.test", "team/app", "latest").Select(t => t.Digest).Order());

        _index.Tags.DeleteTagsPointingTo(Key("sha256:c"));

        Assert.Equal("sha256:b", Assert.Single(_index.Tags.FindTags("registry.test", "team/app", "latest")).Digest);
    }
}
