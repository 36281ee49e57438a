using MitmCache.Caching;

namespace MitmCache.Core.Tests.Caching;

public sealed class StorageHealthTests : BlobCacheTestBase
{
    [Fact]
    public void Readiness_HealthyCache_Empty()
    {
        var (problems, degraded) = _cache.Readiness();

        Assert.Empty(problems);
        Assert.Empty(degraded);
        Assert.False(_cache.IsStorageDegraded);
    }

    [Fact]
    public void Readiness_TempDirectoryGone_ReportsDegradedPassThroughNotUnready()
    {
        Directory.Delete(TempRoot, recursive: true);

        var (problems, degraded) = _cache.Readiness();

        Assert.Empty(problems);
        Assert.Contains("not writable, serving pass-through", Assert.Single(degraded), StringComparison.Ordinal);
    }
}
