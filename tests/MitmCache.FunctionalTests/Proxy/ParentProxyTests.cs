using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Proxy;

/// <summary><c>--upstream-proxy</c>: all upstream traffic goes through a parent proxy with CONNECT.</summary>
public sealed class ParentProxyTests
{
    [Fact]
    public async Task InterceptedRequests_GoThroughParentProxy()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        await world.PushImageAsync("library/via-parent", "v1", (50_000, 71));

        // The parent is a second MitmCache that only tunnels (it intercepts nothing of ours) and
        // alone knows where registry.test lives.
        await using var parent = await ProxyUnderTest.StartAsync(world.DefaultProxySettings() with
        {
            DataDirectory = world.Dir.Combine("parent"),
            Intercept = [],
        });
        await using var child = await ProxyUnderTest.StartAsync(world.DefaultProxySettings() with
        {
            DataDirectory = world.Dir.Combine("child"),
            ConnectTo = [],
            UpstreamProxy = new Uri(parent.Url),
        });

        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/library/via-parent:v1", world.Dir.Combine("oci"), child.Url, child.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(pull.Succeeded, pull.StdErr + "\n" + child.Log.Tail());
        Assert.Contains(parent.Log.Lines, l => l.Contains("\"Decision\":\"Tunnel\"", StringComparison.Ordinal) && l.Contains(world.Authority, StringComparison.Ordinal));
    }
}
