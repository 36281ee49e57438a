using System.Diagnostics;
using System.Globalization;
using System.Runtime.Versioning;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;
using Xunit.Abstractions;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// The .deb on a real systemd (<see cref="NodeFixture"/>): socket activation, readiness by notify,
/// the watchdog, and restarts, crashes and upgrades under load that no client notices. Each test
/// leaves the package installed and serving, so they run in any order on one boot.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class NodeServiceTests(NodeFixture node, ITestOutputHelper output) : IClassFixture<NodeFixture>
{
    private const string Service = "mitmcache.service";

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task Deb_SocketActivated_DynamicUserSandbox_ReadyByNotify_ServesPull()
    {
        await node.EnsureInstalledAsync();
        var machine = node.Machine;

        Assert.Equal("active", await machine.PropertyAsync("mitmcache.socket", "ActiveState"));
        Assert.Equal("notify", await machine.PropertyAsync(Service, "Type"));
        Assert.StartsWith("Serving on 127.0.0.1:", await machine.PropertyAsync(Service, "StatusText"), StringComparison.Ordinal); // sent with READY=1
        Assert.Equal("10s", await machine.PropertyAsync(Service, "WatchdogUSec"));
        Assert.Equal("mitmcache", await machine.PropertyAsync(Service, "User"));
        var pid = await machine.PropertyAsync(Service, "MainPID");
        var status = await machine.RunAsync("cat", $"/proc/{pid}/status");
        Assert.DoesNotContain("\nUid:\t0\t", status, StringComparison.Ordinal);
        Assert.Contains("\nCapEff:\t0000000000000000", status, StringComparison.Ordinal);
        Assert.Contains("\nCapPrm:\t0000000000000000", status, StringComparison.Ordinal);
        Assert.Contains("\nNoNewPrivs:\t1", status, StringComparison.Ordinal);
        Assert.Contains("\nSeccomp:\t2", status, StringComparison.Ordinal);
        Assert.Equal("/usr/bin/mitmcache", await machine.RunAsync("readlink", $"/proc/{pid}/exe"));
        // The listening socket is systemd's, passed in as descriptor 3.
        Assert.StartsWith("socket:", await machine.RunAsync("readlink", $"/proc/{pid}/fd/3"), StringComparison.Ordinal);
        var key = (await machine.RunAsync("stat", "-c", "%u %a", "/var/lib/private/mitmcache/ca/root.key")).Split(' ');
        Assert.NotEqual("0", key[0]);
        Assert.Equal("600", key[1]);

        var pull = await node.PullAsync(node.ProxyUrl);

        Assert.True(pull.Succeeded, pull + "\n" + await machine.LogAsync());
    }

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task TenRestarts_UnderLoad_NoFailedPull_NoRefusedConnection()
    {
        await node.EnsureInstalledAsync();
        Assert.True((await node.PullAsync(node.ProxyUrl)).Succeeded); // cached before the load
        var pids = new HashSet<string>();

        await using var load = PullLoad.Start(node, skopeoClients: 4, ctrClients: 4);
        await WaitForPullsAsync(load, 8);
        for (var i = 0; i < 10; i++)
        {
            pids.Add(await node.Machine.PropertyAsync(Service, "MainPID"));
            await node.Machine.RunAsync("systemctl", "restart", Service);
            await WaitForPullsAsync(load, load.Pulls.Count(p => p.Succeeded) + 4);
        }

        await load.StopAsync();

        pids.Add(await node.Machine.PropertyAsync(Service, "MainPID"));
        Assert.Equal(11, pids.Count); // ten restarts really happened
        Report("10 restarts", load);
        Assert.True(load.Pulls.All(p => p.Succeeded), load.Describe(load.Pulls.Where(p => !p.Succeeded)) + "\n" + await node.Machine.LogAsync());
        Assert.True(load.Probes.All(p => p.Succeeded), load.Describe(load.Probes.Where(p => !p.Succeeded)));
        Assert.All(load.Pulls.GroupBy(p => p.Client), client => Assert.True(client.Count() >= 3, $"{client.Key} pulled {client.Count()} times"));
    }

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task KillMinus9_UnderLoad_PullsStartedAfterTheKillSucceed_SameCaAndCache()
    {
        await node.EnsureInstalledAsync();
        var fingerprint = await FingerprintAsync();
        var restarts = int.Parse(await node.Machine.PropertyAsync(Service, "NRestarts"), CultureInfo.InvariantCulture);

        await using var load = PullLoad.Start(node, skopeoClients: 4, ctrClients: 4);
        await WaitForPullsAsync(load, 8);
        var pid = await node.Machine.PropertyAsync(Service, "MainPID");
        await node.Machine.RunAsync("kill", "-9", pid);
        var killedAt = load.Now; // once kill has returned: the process is gone
        await node.Machine.WaitForAsync(Service, "ActiveState=active", $"NRestarts={restarts + 1}");
        var afterKill = load.Pulls.Count(p => p.Succeeded && p.Start > killedAt);
        await WaitForPullsAsync(load, load.Pulls.Count(p => p.Succeeded) + 8);
        await load.StopAsync();

        Report("kill -9", load);
        var firstServed = load.Probes.Where(p => p.Succeeded && p.Start > killedAt).Min(p => p.End) - killedAt;
        output.WriteLine($"kill -9 to the first served probe: {firstServed.TotalSeconds:0.00} s");
        var lost = load.Pulls.Where(p => !p.Succeeded).ToList();
        Assert.True(lost.All(p => p.Start < killedAt), load.Describe(lost.Where(p => p.Start >= killedAt)) + "\n" + await node.Machine.LogAsync());
        Assert.True(load.Probes.Where(p => p.Start >= killedAt).All(p => p.Succeeded), load.Describe(load.Probes.Where(p => !p.Succeeded)));
        Assert.True(load.Pulls.Count(p => p.Succeeded && p.Start > killedAt) > afterKill);
        Assert.Equal(fingerprint, await FingerprintAsync()); // the same CA, and the cache it had (upstream is never asked below)
    }

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task Sigstop_WatchdogRestartsWithinWatchdogSecPlusStartup_PullsResume()
    {
        await node.EnsureInstalledAsync();
        var machine = node.Machine;
        var restarts = int.Parse(await machine.PropertyAsync(Service, "NRestarts"), CultureInfo.InvariantCulture);
        var pid = await machine.PropertyAsync(Service, "MainPID");
        var clock = Stopwatch.StartNew();

        await machine.RunAsync("kill", "-STOP", pid);
        // A pull started while the proxy is hung waits in the socket's backlog, then the new instance serves it.
        var pull = node.PullAsync(node.ProxyUrl);
        await machine.WaitForAsync(Service, "ActiveState=active", $"NRestarts={restarts + 1}");
        var recovered = clock.Elapsed;

        output.WriteLine($"SIGSTOP to active again: {recovered.TotalSeconds:0.0} s (WatchdogSec=10s)");
        Assert.NotEqual(pid, await machine.PropertyAsync(Service, "MainPID"));
        Assert.True(recovered < TimeSpan.FromSeconds(10 + 30), $"{recovered}"); // WatchdogSec + a generous start-up
        // Nothing but the watchdog ends a stopped process (it cannot even act on SIGTERM).
        Assert.False((await machine.TryRunAsync("test", "-e", $"/proc/{pid}")).Succeeded);
        var resumed = await pull;
        Assert.True(resumed.Succeeded, resumed + "\n" + await machine.LogAsync());
        Assert.True((await node.PullAsync(node.ProxyUrl)).Succeeded);
    }

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task Upgrade_NewerPackageUnderLoad_NewBinaryServes_NoFailedPull()
    {
        await node.EnsureInstalledAsync();
        var machine = node.Machine;
        if (await machine.RunAsync("dpkg-query", "-W", "-f=${Version}", "mitmcache") != NodePackage.Version)
        {
            await machine.RunAsync("apt-get", "install", "-y", "-q", "--allow-downgrades", $"/mnt/{NodePackage.FileName(NodePackage.Version)}");
            await node.WaitServingAsync();
        }

        var pid = await machine.PropertyAsync(Service, "MainPID");
        await using var load = PullLoad.Start(node, skopeoClients: 4, ctrClients: 4);
        await WaitForPullsAsync(load, 8);

        await machine.RunAsync("apt-get", "install", "-y", "-q", $"/mnt/{NodePackage.FileName(NodePackage.UpgradeVersion)}");
        await node.Machine.WaitForAsync(Service, "ActiveState=active", "SubState=running");
        await WaitForPullsAsync(load, load.Pulls.Count(p => p.Succeeded) + 8);
        await load.StopAsync();

        Report("upgrade", load);
        Assert.Equal(NodePackage.UpgradeVersion, await machine.RunAsync("dpkg-query", "-W", "-f=${Version}", "mitmcache"));
        var newPid = await machine.PropertyAsync(Service, "MainPID");
        Assert.NotEqual(pid, newPid); // postinst restarted it onto the new file
        Assert.Equal("/usr/bin/mitmcache", await machine.RunAsync("readlink", $"/proc/{newPid}/exe")); // not "(deleted)"
        Assert.True(load.Pulls.All(p => p.Succeeded), load.Describe(load.Pulls.Where(p => !p.Succeeded)) + "\n" + await machine.LogAsync());
        Assert.True(load.Probes.All(p => p.Succeeded), load.Describe(load.Probes.Where(p => !p.Succeeded)));
    }

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task Ipv6Socket_ReadyByNotify_ServesPullOnLoopbackV6()
    {
        await node.EnsureInstalledAsync();
        var machine = node.Machine;
        var dropIn = "/etc/systemd/system/mitmcache.socket.d/zz-ipv6.conf";
        await machine.WriteFileAsync(dropIn, $"[Socket]\nListenStream=\nListenStream=[::1]:{node.Ipv6Port}\n");
        try
        {
            await machine.RunAsync("systemctl", "daemon-reload");
            await machine.RunAsync("systemctl", "stop", Service, "mitmcache.socket");
            await machine.RunAsync("systemctl", "start", "mitmcache.socket");
            var proxy = $"http://[::1]:{node.Ipv6Port}";
            using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) })
            {
                Assert.Equal("ready\n", await http.GetStringAsync($"{proxy}/readyz")); // starts the service on the IPv6 socket
            }

            await machine.WaitForAsync(Service, "ActiveState=active", "SubState=running");
            Assert.Equal($"Serving on [::1]:{node.Ipv6Port} (socket from systemd)", await machine.PropertyAsync(Service, "StatusText"));

            var pull = await node.PullAsync(proxy);

            Assert.True(pull.Succeeded, pull + "\n" + await machine.LogAsync());
        }
        finally
        {
            await machine.RunAsync("rm", "-f", dropIn);
            await machine.RunAsync("systemctl", "daemon-reload");
            await machine.RunAsync("systemctl", "stop", Service, "mitmcache.socket");
            await machine.RunAsync("systemctl", "start", "mitmcache.socket");
            await node.WaitServingAsync();
        }
    }

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task Stop_ExitsCleanly_Remove_KeepsCaAndCache_Purge_RemovesThem()
    {
        await node.EnsureInstalledAsync();
        var machine = node.Machine;
        Assert.True((await node.PullAsync(node.ProxyUrl)).Succeeded);
        var fingerprint = await FingerprintAsync();

        // systemctl stop sends SIGTERM: the proxy drains and exits 0, so the unit ends inactive, not failed.
        await machine.RunAsync("systemctl", "stop", Service);
        await machine.WaitForAsync(Service, "ActiveState=inactive", "Result=success");
        Assert.Equal("0", await machine.PropertyAsync(Service, "ExecMainStatus"));
        var blobs = await machine.RunAsync("find", "/var/lib/private/mitmcache", "-path", "*sha256*", "-type", "f");
        Assert.NotEmpty(blobs);

        await machine.RunAsync("apt-get", "remove", "-y", "-q", "mitmcache");

        Assert.Equal("inactive", await machine.PropertyAsync("mitmcache.socket", "ActiveState"));
        Assert.False((await machine.TryRunAsync("test", "-e", "/usr/bin/mitmcache")).Succeeded);
        await AssertRefusedAsync(node.ProxyPort);
        Assert.Equal(blobs, await machine.RunAsync("find", "/var/lib/private/mitmcache", "-path", "*sha256*", "-type", "f"));
        Assert.True((await machine.TryRunAsync("test", "-f", "/var/lib/private/mitmcache/ca/root.key")).Succeeded);
        Assert.True((await machine.TryRunAsync("test", "-f", "/etc/mitmcache/mitmcache.env")).Succeeded);

        // Installed again (as it was removed: nothing enabled), it serves the same CA.
        await node.EnsureInstalledAsync();
        Assert.Equal(fingerprint, await FingerprintAsync());

        await machine.RunAsync("apt-get", "purge", "-y", "-q", "mitmcache");

        foreach (var path in new[] { "/var/lib/private/mitmcache", "/var/lib/mitmcache", "/etc/mitmcache", "/var/cache/private/mitmcache", "/usr/bin/mitmcache" })
        {
            Assert.False((await machine.TryRunAsync("test", "-e", path)).Succeeded, $"{path} is still there after purge");
        }

        await node.EnsureInstalledAsync(); // for the other tests: a fresh install, a new CA
        Assert.NotEqual(fingerprint, await FingerprintAsync());
    }

    private async Task<string> FingerprintAsync()
    {
        using var http = new HttpClient { BaseAddress = new Uri(node.ProxyUrl), Timeout = TimeSpan.FromSeconds(60) };
        using var response = await http.GetAsync("/ca.crt");
        return response.Headers.GetValues("X-Certificate-SHA256").Single();
    }

    private static async Task AssertRefusedAsync(int port)
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        var error = await Assert.ThrowsAsync<System.Net.Sockets.SocketException>(() => socket.ConnectAsync(System.Net.IPAddress.Loopback, port));
        Assert.Equal(System.Net.Sockets.SocketError.ConnectionRefused, error.SocketErrorCode);
    }

    private static async Task WaitForPullsAsync(PullLoad load, int succeeded)
    {
        Assert.True(await Poll.UntilAsync(() => load.Pulls.Count(p => p.Succeeded) >= succeeded, TimeSpan.FromSeconds(120)),
            $"{load.Pulls.Count(p => p.Succeeded)} of {succeeded} pulls\n{load.Describe(load.Pulls.Where(p => !p.Succeeded))}");
    }

    private void Report(string what, PullLoad load)
    {
        var waits = load.Probes.Select(p => (p.End - p.Start).TotalMilliseconds).Order().ToList();
        output.WriteLine($"{what}: {load.Pulls.Count} pulls ({load.Pulls.Count(p => !p.Succeeded)} failed), {load.Probes.Count} probes " +
            $"({load.Probes.Count(p => p.Error == "ConnectionRefused")} refused, {load.Probes.Count(p => !p.Succeeded)} failed), " +
            $"longest probe wait {waits.LastOrDefault():0} ms");
    }
}
