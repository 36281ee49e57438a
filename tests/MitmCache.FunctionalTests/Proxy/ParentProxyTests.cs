using System.Net;
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
            UpstreamProxies = [new Uri(parent.Url)],
        });

        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/library/via-parent:v1", world.Dir.Combine("oci"), child.Url, child.CaBundlePath, null, false, CancellationToken.None);

        Assert.True(pull.Succeeded, pull.StdErr + "\n" + child.Log.Tail());
        Assert.Contains(parent.Log.Lines, l => l.Contains("\"Decision\":\"Tunnel\"", StringComparison.Ordinal) && l.Contains(world.Authority, StringComparison.Ordinal));
    }

    /// <summary>
    /// With a parent, the child still resolves and checks every target itself before it sends CONNECT: neither a
    /// redirect to the metadata address (plain or IPv4-mapped) nor a name that resolves there reaches the parent.
    /// </summary>
    [Fact]
    public async Task DeniedTargets_CheckedByTheChild_NeverSentToTheParent()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/x/manifests/v4", HostileRegistry.RedirectTo(_ => $"https://169.254.169.254:{evil.Port}/latest/meta-data/"))
            .On("/v2/x/manifests/mapped", HostileRegistry.RedirectTo(_ => $"https://[::ffff:169.254.169.254]:{evil.Port}/latest/meta-data/"))
            .On("/v2/x/blobs/", HostileRegistry.RedirectTo(_ => $"https://169.254.169.254:{evil.Port}/latest/meta-data/"))
            .On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        await using var parent = new RecordingParentProxy(new Dictionary<string, int> { [evil.Authority] = evil.Port });
        await using var child = await ProxyUnderTest.StartAsync(world.DefaultProxySettings() with
        {
            DataDirectory = world.Dir.Combine("child"),
            Intercept = [evil.Host],
            AllowedPorts = new HashSet<int> { 443, evil.Port },
            ConnectTo = [new("meta.test", 443, "169.254.169.254", 443)],
            UpstreamProxies = [new Uri(parent.Url)],
        });

        var inspect = await Skopeo.InspectAsync($"{evil.Authority}/x:v4", child.Url, child.CaBundlePath, null, CancellationToken.None);
        using var client = ProxyClients.Create(child);
        using var mapped = await client.GetAsync($"https://{evil.Authority}/v2/x/manifests/mapped");
        using var blob = await client.GetAsync($"https://{evil.Authority}/v2/x/blobs/sha256:{new string('a', 64)}");
        var tunnel = await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetAsync("https://meta.test/latest/meta-data/"));

        Assert.False(inspect.Succeeded);
        Assert.NotEqual(HttpStatusCode.OK, mapped.StatusCode);
        Assert.NotEqual(HttpStatusCode.OK, blob.StatusCode);
        Assert.Contains(evil.Authority, parent.Targets); // the registry itself still goes through the parent
        Assert.DoesNotContain(parent.Targets, t => t.Contains("169.254", StringComparison.Ordinal) || t.Contains("ffff", StringComparison.OrdinalIgnoreCase) || t.Contains("meta", StringComparison.Ordinal));
    }

    /// <summary>An IPv6 redirect target (allowed here) reaches the parent as <c>[::1]:PORT</c>, bracketed once.</summary>
    [Fact]
    public async Task Ipv6RedirectTarget_SentToTheParentBracketedOnce()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        await using var evil = await HostileRegistry.StartAsync(world.Pki, "evil.test");
        evil.On("/v2/x/", HostileRegistry.RedirectTo(_ => $"https://[::1]:{evil.Port}/v2/"))
            .On("/v2/", HostileRegistry.Body("{}"u8.ToArray(), "application/json"));
        await using var parent = new RecordingParentProxy(new Dictionary<string, int> { [evil.Authority] = evil.Port, [$"[::1]:{evil.Port}"] = evil.Port });
        await using var child = await ProxyUnderTest.StartAsync(world.DefaultProxySettings() with
        {
            DataDirectory = world.Dir.Combine("child"),
            Intercept = [evil.Host],
            AllowedPorts = new HashSet<int> { 443, evil.Port },
            ConnectTo = [],
            UpstreamProxies = [new Uri(parent.Url)],
            AllowedUpstreamNetworks = [IPNetwork.Parse("::1/128")],
        });

        using var client = ProxyClients.Create(child);
        using var _ = await client.GetAsync($"https://{evil.Authority}/v2/x/manifests/latest");

        Assert.Contains($"[::1]:{evil.Port}", parent.Targets);
        Assert.DoesNotContain(parent.Targets, t => t.StartsWith("[[", StringComparison.Ordinal));
    }
}
