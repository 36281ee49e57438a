using MitmCache.Hosting;

namespace MitmCache.Core.Tests.Hosting;

public class UpstreamTargetTests
{
    [Theory]
    [InlineData("/v2/library/app/tags/list?n=10&last=a")]
    [InlineData("/x/../v2/library/app/blobs/sha256:00")]
    [InlineData("/a/./b")]
    [InlineData("/a\\b")]
    [InlineData("/token?%%%")]
    [InlineData("/x%zz")]
    [InlineData("/x%2e%2e/%2F")]
    [InlineData("/%7euser")]
    [InlineData("/x{y}|z")]
    [InlineData("/")]
    public void TryForIntercepted_VisibleAsciiTarget_PathAndQueryForwardedVerbatim(string rawTarget)
    {
        Assert.True(UpstreamTarget.TryForIntercepted("registry.test:5000", rawTarget, out var uri));
        Assert.Equal("https", uri.Scheme);
        Assert.Equal("registry.test", uri.Host);
        Assert.Equal(5000, uri.Port);
        Assert.Equal(rawTarget, uri.PathAndQuery);
    }

    [Fact]
    public void TryForIntercepted_ManyStrayPercents_NotExpanded()
    {
        var rawTarget = "/q?" + new string('%', 3000);

        Assert.True(UpstreamTarget.TryForIntercepted("ghcr.io", rawTarget, out var uri));
        Assert.Equal(rawTarget.Length, uri.PathAndQuery.Length);
    }

    [Theory]
    [InlineData("/token?service=\r")]
    [InlineData("/a\r\nX-Injected: 1")]
    [InlineData("/a\nb")]
    [InlineData("/a b")]
    [InlineData("/a\tb")]
    [InlineData("/a\u0000b")]
    [InlineData("/a\u007fb")]
    [InlineData("/caf\u00e9")]
    [InlineData("/a#fragment")]
    [InlineData("relative")]
    [InlineData("")]
    public void TryForIntercepted_ControlNonAsciiFragmentOrNoSlash_False(string rawTarget)
    {
        Assert.False(UpstreamTarget.TryForIntercepted("registry.test", rawTarget, out _));
    }

    [Theory]
    [InlineData("http://plain.test/a/../b?x=%zz", "plain.test", 80, "/a/../b?x=%zz")]
    [InlineData("http://plain.test:8080/", "plain.test", 8080, "/")]
    [InlineData("http://[::1]:81/x\\y", "[::1]", 81, "/x\\y")]
    public void TryParseAbsolute_Valid_HostPortAndVerbatimPath(string rawTarget, string host, int port, string pathAndQuery)
    {
        Assert.True(UpstreamTarget.TryParseAbsolute(rawTarget, out var uri));
        Assert.Equal(host, uri.Host);
        Assert.Equal(port, uri.Port);
        Assert.Equal(pathAndQuery, uri.PathAndQuery);
    }

    [Theory]
    [InlineData("/relative")]
    [InlineData("http://")]
    [InlineData("http://plain.test:65536/")]
    [InlineData("not a uri")]
    [InlineData("ftp://plain.test/")]
    [InlineData("http://plain.test/a\rb")]
    [InlineData("http://plain.test/a#b")]
    public void TryParseAbsolute_NotAnAbsoluteUri_False(string rawTarget)
    {
        Assert.False(UpstreamTarget.TryParseAbsolute(rawTarget, out _));
    }
}
