using MitmCache.Hosting;

namespace MitmCache.Core.Tests.Hosting;

public class MethodNamesTests
{
    [Theory]
    [InlineData("Head", "HEAD")]
    [InlineData("head", "HEAD")]
    [InlineData("get", "GET")]
    [InlineData("Connect", "CONNECT")]
    [InlineData("pAtCh", "PATCH")]
    public void IsMiscased_StandardMethodInWrongCase_TrueWithStandardName(string method, string expected)
    {
        Assert.True(MethodNames.IsMiscased(method, out var standard));
        Assert.Equal(expected, standard);
    }

    [Theory]
    [InlineData("GET")]
    [InlineData("HEAD")]
    [InlineData("DELETE")]
    [InlineData("PROPFIND")] // unknown methods are not ours to judge
    [InlineData("Foo")]
    [InlineData("HEADS")]
    public void IsMiscased_ExactOrUnknownMethod_False(string method)
    {
        Assert.False(MethodNames.IsMiscased(method, out _));
    }
}
