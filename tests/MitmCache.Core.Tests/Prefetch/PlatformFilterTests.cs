using System.Text.Json;
using MitmCache.Prefetch;

namespace MitmCache.Core.Tests.Prefetch;

public class PlatformFilterTests
{
    [Theory]
    [InlineData("all", """{"platform":{"os":"unknown","architecture":"unknown"}}""", true)]
    [InlineData("all", """{}""", true)]
    [InlineData("linux/amd64", """{"platform":{"os":"linux","architecture":"amd64"}}""", true)]
    [InlineData("linux/arm64", """{"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}""", true)]
    [InlineData("linux/arm64/v8", """{"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}""", true)]
    [InlineData("linux/arm/v7", """{"platform":{"os":"linux","architecture":"arm","variant":"v6"}}""", false)]
    [InlineData("linux/amd64,linux/arm64", """{"platform":{"os":"linux","architecture":"arm64"}}""", true)]
    [InlineData("linux/amd64", """{"platform":{"os":"windows","architecture":"amd64"}}""", false)]
    [InlineData("linux/amd64", """{"platform":{"os":"unknown","architecture":"unknown"}}""", false)]
    [InlineData("LINUX/AMD64", """{"platform":{"os":"linux","architecture":"amd64"}}""", true)]
    public void Matches_IndexEntry(string filter, string entry, bool expected)
    {
        Assert.True(PlatformFilter.TryParse(filter, out var platforms, out var error), error);
        using var document = JsonDocument.Parse(entry);

        Assert.Equal(expected, platforms.Matches(document.RootElement));
    }

    [Theory]
    [InlineData("linux")]
    [InlineData("linux/")]
    [InlineData("linux/arm/v7/extra")]
    [InlineData("linux/amd64,,/x")]
    public void TryParse_Invalid_False(string filter) => Assert.False(PlatformFilter.TryParse(filter, out _, out _));

    [Fact]
    public void TryParse_Nothing_HostPlatform()
    {
        Assert.True(PlatformFilter.TryParse(null, out var platforms, out _));

        Assert.False(platforms.All);
        Assert.StartsWith("linux/", platforms.ToString(), StringComparison.Ordinal);
    }
}
