using MitmCache.Certificates;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Proxy;

/// <summary><c>ca init --permit</c>: a root that cannot vouch for an intercepted host.</summary>
public sealed class NameConstrainedCaTests
{
    /// <summary>
    /// The root only permits example.com, yet registry.test is on the intercept list: the proxy says so at
    /// start-up and tunnels that host instead of presenting a leaf every client would reject.
    /// </summary>
    [Fact]
    public async Task InterceptedHostOutsideThePermittedNames_WarnedAtStartAndTunnelled()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        await world.PushImageAsync("library/app", "v1", (10_000, 951));
        var data = world.Dir.Combine("constrained");
        using (var authority = CertificateAuthority.Create(["example.com"], TimeProvider.System))
        {
            authority.Save(Path.Combine(data, "ca"));
        }

        await world.ReplaceProxyAsync(s => s with { DataDirectory = data });
        var bundle = world.Dir.Combine("bundle.pem");
        await File.WriteAllTextAsync(bundle, await File.ReadAllTextAsync(world.Proxy.CaBundlePath) + await File.ReadAllTextAsync(world.Pki.CaCertPath));

        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/library/app:v1", world.Dir.Combine("oci"), world.Proxy.Url, bundle, null, false, CancellationToken.None);

        Assert.Contains(world.Proxy.Log.Lines, l => l.Contains("\"@l\":\"Warning\"", StringComparison.Ordinal)
            && l.Contains(Hosts.Registry, StringComparison.Ordinal) && l.Contains("example.com", StringComparison.Ordinal));
        Assert.True(pull.Succeeded, pull.StdErr + "\n" + world.Proxy.Log.Tail());
        Assert.Contains(world.Proxy.Log.Lines, l => l.Contains("\"Decision\":\"Tunnel\"", StringComparison.Ordinal) && l.Contains(world.Authority, StringComparison.Ordinal));
    }
}
