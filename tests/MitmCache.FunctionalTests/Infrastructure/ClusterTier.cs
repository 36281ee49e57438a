using System.Globalization;
using MitmCache.Tests.Common;
using MitmCache.Upstream;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// The cluster tier as processes: parents that intercept the world's registry, token host and CDN and share one CA
/// (the first parent's, copied), and children whose <c>--upstream-proxy</c> lists every parent and who trust the
/// cluster CA and the world's (for direct fall-back) in one <c>--upstream-ca</c> bundle.
/// </summary>
public sealed class ClusterTier : IDisposable
{
    private readonly RegistryWorld _world;
    private readonly List<ProxyProcess> _children = [];
    private readonly List<string[]> _parentArguments;

    private ClusterTier(RegistryWorld world, List<ProxyProcess> parents, List<string[]> parentArguments, string trustBundle)
    {
        _world = world;
        _parentArguments = parentArguments;
        Parents = parents;
        TrustBundle = trustBundle;
    }

    public List<ProxyProcess> Parents { get; }

    /// <summary>The world's CA and the cluster CA: what a child trusts upstream.</summary>
    public string TrustBundle { get; }

    /// <summary>The parents as children name them: <c>127.0.0.1:PORT</c>, the members of the ranking.</summary>
    public IReadOnlyList<string> Members => [.. Parents.Select(p => $"127.0.0.1:{p.Port}")];

    public static async Task<ClusterTier> StartAsync(RegistryWorld world, int parents = 3, Func<int, string[]>? parentArguments = null)
    {
        var started = new List<ProxyProcess>();
        var arguments = new List<string[]>();
        for (var i = 0; i < parents; i++)
        {
            var data = world.Dir.Combine($"parent{i}");
            if (i > 0)
            {
                Directory.CreateDirectory(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                var copy = await ProcessRunner.RunAsync("cp", ["-a", Path.Combine(started[0].DataDirectory, "ca"), Path.Combine(data, "ca")]);
                Assert.True(copy.Succeeded, copy.StdErr);
            }

            arguments.Add([.. WorldArguments(world), "--instance-name", $"parent{i}", .. parentArguments?.Invoke(i) ?? []]);
            started.Add(await ProxyProcess.StartAsync(data, FreePort.Get(), arguments[i]));
        }

        var bundle = world.Dir.Combine("cluster-trust.pem");
        await File.WriteAllTextAsync(bundle, await File.ReadAllTextAsync(world.Pki.CaCertPath) + "\n" + await File.ReadAllTextAsync(started[0].CaBundlePath));
        return new ClusterTier(world, started, arguments, bundle);
    }

    /// <summary>Starts a killed parent again: the same port, data directory and options.</summary>
    public async Task RestartParentAsync(int index)
    {
        var old = Parents[index];
        old.Dispose();
        Parents[index] = await ProxyProcess.StartAsync(old.DataDirectory, old.Port, _parentArguments[index]);
    }

    /// <summary>A child of every parent (a fresh data directory), with <paramref name="extra"/> options.</summary>
    public async Task<ProxyProcess> StartChildAsync(string name, params string[] extra)
    {
        // A child waits longer than its parents do for the registry (5 s): a parent slow to answer because the registry
        // is (or because it is still compiling its first request on a loaded machine) gives its own answer in time.
        List<string> arguments = [.. WorldArguments(_world, TrustBundle, upstreamTimeout: "15s"), "--connect-timeout", "5s", "--instance-name", name];
        foreach (var parent in Parents)
        {
            arguments.AddRange(["--upstream-proxy", parent.Url]);
        }

        var child = await ProxyProcess.StartAsync(_world.Dir.Combine(name), FreePort.Get(), [.. arguments, .. extra]);
        _children.Add(child);
        return child;
    }

    /// <summary>The parent a key ranks first on (<c>blob sha256:...</c>, <c>repo NAME</c>), as every child computes it.</summary>
    public ProxyProcess Owner(string key) => Parents[Rendezvous.Rank(Members, key)[0]];

    /// <summary>The parents for a key, best first.</summary>
    public IReadOnlyList<ProxyProcess> Ranked(string key) => [.. Rendezvous.Rank(Members, key).Select(i => Parents[i])];

    /// <summary>Whether a proxy's blob store holds a digest.</summary>
    public static bool Holds(ProxyProcess proxy, string digest)
    {
        var hex = digest["sha256:".Length..];
        return File.Exists(Path.Combine(proxy.DataDirectory, "blobs", "sha256", hex[..2], hex));
    }

    /// <summary>Options that let a proxy reach the world: its hosts intercepted, their ports allowed, dialled on loopback.</summary>
    private static string[] WorldArguments(RegistryWorld world, string? trust = null, string upstreamTimeout = "5s")
    {
        var settings = world.DefaultProxySettings();
        List<string> arguments = ["--no-default-intercept", "--upstream-ca", trust ?? world.Pki.CaCertPath, "--upstream-timeout", upstreamTimeout];
        foreach (var host in settings.Intercept.Except(MitmCache.Configuration.ProxySettings.DefaultIntercept))
        {
            arguments.AddRange(["--intercept", host]);
        }

        foreach (var port in settings.AllowedPorts.Where(p => p != 443))
        {
            arguments.AddRange(["--allow-port", port.ToString(CultureInfo.InvariantCulture)]);
        }

        foreach (var rule in settings.ConnectTo)
        {
            arguments.AddRange(["--connect-to", string.Create(CultureInfo.InvariantCulture, $"{rule.Host}:{rule.Port}:{rule.Address}:{rule.TargetPort}")]);
        }

        return [.. arguments];
    }

    public void Dispose()
    {
        foreach (var process in _children.Concat(Parents))
        {
            process.Dispose();
        }
    }
}
