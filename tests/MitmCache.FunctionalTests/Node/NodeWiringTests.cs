using System.Text.RegularExpressions;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// ca/install-node.sh for real: it fetches the root from the running proxy and writes the drop-ins;
/// a private dockerd and containerd (ctr) then run with exactly the environment those drop-ins give
/// (read from the files) and the CA file it installed, and pull through MitmCache.
/// </summary>
public sealed partial class NodeWiringTests
{
    [Fact]
    public async Task InstallNode_DropInEnvironment_DockerdAndContainerdPullThroughProxy()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: true);
        var image = await world.PushImageAsync("library/wired", "v1", (100_000, 91));
        var root = world.Dir.Combine("node-root");
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        await File.WriteAllTextAsync(Path.Combine(root, "etc", "os-release"), "ID=debian\n");

        var install = await ProcessRunner.RunAsync("bash", [RepositoryFiles.Combine("ca", "install-node.sh"),
            "--proxy", world.Proxy.Url, "--runtime", "containerd,docker", "--root", root]);
        Assert.True(install.Succeeded, install.StdOut + install.StdErr);

        var caFile = Path.Combine(root, "usr", "local", "share", "ca-certificates", "mitmcache.crt");
        Assert.Equal(await File.ReadAllTextAsync(world.Proxy.CaBundlePath), await File.ReadAllTextAsync(caFile));
        var reference = $"{world.Authority}/library/wired:v1";

        var dockerEnvironment = DropInEnvironment(Path.Combine(root, "etc", "systemd", "system", "docker.service.d", "http-proxy.conf"));
        Assert.Equal(world.Proxy.Url, dockerEnvironment["HTTPS_PROXY"]);
        dockerEnvironment["SSL_CERT_FILE"] = caFile;
        await using (var docker = await DockerDaemon.StartAsync(world.Dir.Combine("dockerd"), dockerEnvironment, CancellationToken.None))
        {
            var pull = await docker.PullAsync(reference, CancellationToken.None);
            Assert.True(pull.Succeeded, pull.StdOut + pull.StdErr);
            Assert.Contains(image.ManifestDigest, pull.StdOut, StringComparison.Ordinal);
        }

        var containerdEnvironment = DropInEnvironment(Path.Combine(root, "etc", "systemd", "system", "containerd.service.d", "http-proxy.conf"));
        containerdEnvironment["SSL_CERT_FILE"] = caFile;
        await using var containerd = await ContainerdServer.StartAsync(world.Dir.Combine("containerd"), CancellationToken.None);
        var fetch = await containerd.CtrAsync(["content", "fetch", reference], containerdEnvironment, CancellationToken.None);
        Assert.True(fetch.Succeeded, fetch.StdOut + fetch.StdErr);
        Assert.True(await world.Proxy.Log.WaitForAsync(l => l.Contains("library/wired", StringComparison.Ordinal) && l.Contains("\"Result\":\"hit\"", StringComparison.Ordinal)), world.Proxy.Log.Tail());
    }

    /// <summary>The <c>Environment="K=V"</c> lines of a systemd drop-in, as systemd would read them.</summary>
    private static Dictionary<string, string?> DropInEnvironment(string path)
    {
        var environment = new Dictionary<string, string?>();
        foreach (Match match in EnvironmentLine().Matches(File.ReadAllText(path)))
        {
            environment[match.Groups[1].Value] = match.Groups[2].Value.Replace("%%", "%", StringComparison.Ordinal);
        }

        Assert.Contains("HTTPS_PROXY", environment.Keys);
        Assert.Contains("NO_PROXY", environment.Keys);
        return environment;
    }

    [GeneratedRegex("^Environment=\"([A-Z_]+)=([^\"]*)\"$", RegexOptions.Multiline)]
    private static partial Regex EnvironmentLine();
}
