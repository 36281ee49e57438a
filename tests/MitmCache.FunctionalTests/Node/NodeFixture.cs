using System.Globalization;
using System.Runtime.Versioning;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// One systemd machine (<see cref="SystemdMachine"/>) shared by the node tests, with the .deb
/// (<see cref="NodePackage"/>) installed by apt-get and <c>systemctl enable --now mitmcache.socket</c>,
/// exactly the documented set-up. Test-only drop-ins move the socket to a free port, point the proxy at
/// the test registry (an extra EnvironmentFile, so the packaged mitmcache.env stays as shipped), send
/// its output to /run/mitmcache.log, and drop the default dependencies on sysinit.target (this is not a
/// booted machine). A registry with one image, and a containerd for ctr, run outside on loopback.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class NodeFixture : IAsyncLifetime
{
    private SystemdMachine? _machine;
    private RegistryWorld? _world;
    private ContainerdServer? _containerd;

    internal SystemdMachine Machine => _machine!;

    internal RegistryWorld World => _world!;

    internal ContainerdServer Containerd => _containerd!;

    internal BuiltImage Image { get; private set; } = null!;

    internal int ProxyPort { get; } = FreePort.Get();

    internal int Ipv6Port { get; } = FreePort.Get();

    internal string ProxyUrl => $"http://127.0.0.1:{ProxyPort}";

    internal string Reference => $"{World.Authority}/library/node:v1";

    /// <summary>The proxy's root as clients trust it (refreshed by <see cref="EnsureInstalledAsync"/>: a purge makes a new CA).</summary>
    internal string CaBundle => World.Dir.Combine("node-ca.pem");

    public async Task InitializeAsync()
    {
        if (!File.Exists("/lib/systemd/systemd") || !Environment.IsPrivilegedProcess)
        {
            return; // the tests skip themselves (RequiresExecutableFact)
        }

        var debs = await NodePackage.DirectoryAsync();
        _world = await RegistryWorld.StartAsync(tokenAuth: false);
        Image = await World.PushImageAsync("library/node", "v1", (300_000, 161), (40_000, 162));
        _containerd = await ContainerdServer.StartAsync(World.Dir.Combine("containerd"), CancellationToken.None);
        var registryPort = World.Registry.Port.ToString(CultureInfo.InvariantCulture);
        _machine = await SystemdMachine.BootAsync(World.Dir.Combine("systemd"), new Dictionary<string, string>
        {
            ["mitmcache.socket.d/test.conf"] = $"[Unit]\nDefaultDependencies=no\n[Socket]\nListenStream=\nListenStream=127.0.0.1:{ProxyPort}\n",
            ["mitmcache.service.d/test.conf"] = "[Unit]\nDefaultDependencies=no\n[Service]\nEnvironmentFile=/etc/mitmcache-test/test.env\n"
                + "StandardOutput=append:/run/mitmcache.log\nStandardError=append:/run/mitmcache.log\n",
        }, new Dictionary<string, string>
        {
            ["mitmcache-test/test.env"] = $"MITMCACHE_INTERCEPT={Hosts.Registry}\nMITMCACHE_ALLOW_PORT={registryPort}\n"
                + $"MITMCACHE_CONNECT_TO={Hosts.Registry}:{registryPort}:127.0.0.1:{registryPort}\nMITMCACHE_UPSTREAM_CA=/etc/mitmcache-test/upstream-ca.pem\n",
            ["mitmcache-test/upstream-ca.pem"] = await File.ReadAllTextAsync(World.Pki.CaCertPath),
        }, debs);
        await Machine.RunAsync("chmod", "0644", "/etc/mitmcache-test/upstream-ca.pem");
        await EnsureInstalledAsync();
    }

    /// <summary>Installs the first .deb and enables the socket, unless it is installed already; then waits until it serves.</summary>
    internal async Task EnsureInstalledAsync()
    {
        var installed = await Machine.TryRunAsync("dpkg-query", "-W", "-f=${Status}", "mitmcache");
        if (!installed.StdOut.Contains("install ok installed", StringComparison.Ordinal))
        {
            await Machine.RunAsync("apt-get", "install", "-y", "-q", $"/mnt/{NodePackage.FileName(NodePackage.Version)}");
            await Machine.RunAsync("systemctl", "enable", "--now", "mitmcache.socket");
        }

        await WaitServingAsync();
    }

    /// <summary>Waits until the service is active (READY=1 came), then takes the root CA the proxy serves.</summary>
    internal async Task WaitServingAsync()
    {
        using var http = new HttpClient { BaseAddress = new Uri(ProxyUrl), Timeout = TimeSpan.FromSeconds(60) };
        using var ca = await http.GetAsync("/ca.crt"); // the first connection starts the service
        Assert.True(ca.IsSuccessStatusCode, ca.ToString());
        await File.WriteAllTextAsync(CaBundle, await ca.Content.ReadAsStringAsync());
        await Machine.WaitForAsync("mitmcache.service", "ActiveState=active", "SubState=running");
    }

    /// <summary>One skopeo pull through the proxy.</summary>
    internal async Task<ProcessResult> PullAsync(string proxyUrl)
    {
        var target = World.Dir.Combine($"pull-{Guid.NewGuid():N}");
        var result = await Skopeo.CopyToOciAsync(Reference, target, proxyUrl, CaBundle, null, false, CancellationToken.None);
        if (result.Succeeded)
        {
            Directory.Delete(target, recursive: true);
        }

        return result;
    }

    public async Task DisposeAsync()
    {
        if (_machine is not null)
        {
            await _machine.DisposeAsync();
        }

        if (_containerd is not null)
        {
            await _containerd.DisposeAsync();
        }

        if (_world is not null)
        {
            await _world.DisposeAsync();
        }
    }
}
