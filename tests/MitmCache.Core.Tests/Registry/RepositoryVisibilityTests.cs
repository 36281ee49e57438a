using MitmCache.Core.Tests.Caching;
using MitmCache.Core.Tests.Certificates;

namespace MitmCache.Core.Tests.Registry;

public sealed class RepositoryVisibilityTests : IDisposable
{
    private static readonly DateTime s_t0 = new(2025, 1, 1, 12, 0, 0, DateTimeKind.Utc);

    private readonly TempDirectory _directory = new();
    private readonly TestIndex _index;

    public RepositoryVisibilityTests() => _index = new TestIndex(_directory.Combine("index.db"));

    public void Dispose()
    {
        _index.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public void SetVisibility_ThenIsPublic_ReturnsLastValue()
    {
        Assert.Null(_index.Visibility.IsPublic("registry.test", "team/app"));

        _index.Visibility.SetVisibility("registry.test", "team/app", isPublic: true, s_t0);
        _index.Visibility.SetVisibility("registry.test", "team/app", isPublic: false, s_t0);

        Assert.False(_index.Visibility.IsPublic("registry.test", "team/app"));
    }

    [Fact]
    public void DeleteStale_OldAndUnkept_Forgotten_RecentOrKeptStay()
    {
        _index.Visibility.SetVisibility("registry.test", "gone/public", isPublic: true, s_t0);
        _index.Visibility.SetVisibility("registry.test", "gone/private", isPublic: false, s_t0);
        _index.Visibility.SetVisibility("registry.test", "still/cached", isPublic: true, s_t0);
        _index.Visibility.SetVisibility("registry.test", "recent/answer", isPublic: true, s_t0.AddDays(8));
        Assert.True(_index.Visibility.IsPublic("registry.test", "gone/public")); // answered from memory from now on

        var deleted = _index.Visibility.DeleteStale(s_t0.AddDays(7), r => r.Id == "registry.test/still/cached");

        Assert.Equal(2, deleted);
        Assert.Null(_index.Visibility.IsPublic("registry.test", "gone/public")); // unknown: as strict as private
        Assert.Null(_index.Visibility.IsPublic("registry.test", "gone/private"));
        Assert.True(_index.Visibility.IsPublic("registry.test", "still/cached"));
        Assert.True(_index.Visibility.IsPublic("registry.test", "recent/answer"));
    }
}
