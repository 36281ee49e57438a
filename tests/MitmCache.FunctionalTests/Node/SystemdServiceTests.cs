using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// systemd/mitmcache.service run by a real systemd: PID 1 of a private PID and mount namespace, booted
/// into a target that wants only this unit. The unit file is used as shipped; a test drop-in only
/// drops the default dependencies on sysinit.target (this is not a booted machine) and sends the output
/// to a file. The binary sits where the README installs it (/opt/mitmcache, linked from
/// /usr/local/bin). /etc is a copy and /tmp, /run, /var/lib and /var/cache are tmpfs inside the
/// namespace, so the machine is never touched (systemd at boot would otherwise clean the real /tmp).
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class SystemdServiceTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);

    [RequiresExecutableFact("/lib/systemd/systemd", "systemd", Root = true)]
    public async Task ShippedUnit_DynamicUserSandbox_CachesPulls_SurvivesKill_StopsCleanly()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/unit", "v1", (120_000, 151), (30_000, 152));
        var port = FreePort.Get();
        await using var machine = await SystemdNamespace.BootAsync(world.Dir.Combine("systemd"), new Dictionary<string, string>
        {
            ["MITMCACHE_LISTEN"] = $"127.0.0.1:{port}",
            ["MITMCACHE_INTERCEPT"] = Hosts.Registry,
            ["MITMCACHE_ALLOW_PORT"] = world.Registry.Port.ToString(CultureInfo.InvariantCulture),
            ["MITMCACHE_CONNECT_TO"] = $"{Hosts.Registry}:{world.Registry.Port}:127.0.0.1:{world.Registry.Port}",
            ["MITMCACHE_UPSTREAM_CA"] = "/etc/mitmcache/upstream-ca.pem",
        }, world.Pki.CaCertPath);

        // Started means ready: ExecStartPost waited for /readyz.
        await machine.WaitForAsync("ActiveState=active", "NRestarts=0");
        Assert.Equal("mitmcache", await machine.PropertyAsync("User"));
        var pid = await machine.PropertyAsync("MainPID");
        var status = await machine.RunAsync("cat", $"/proc/{pid}/status");
        Assert.DoesNotContain("\nUid:\t0\t", status, StringComparison.Ordinal);
        Assert.Contains("\nCapEff:\t0000000000000000", status, StringComparison.Ordinal);
        Assert.Contains("\nNoNewPrivs:\t1", status, StringComparison.Ordinal);
        Assert.Contains("\nSeccomp:\t2", status, StringComparison.Ordinal);
        var key = (await machine.RunAsync("stat", "-c", "%u %a", "/var/lib/private/mitmcache/ca/root.key")).Split(' ');
        Assert.NotEqual("0", key[0]);
        Assert.Equal("600", key[1]);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using (var ca = await http.GetAsync("/ca.crt"))
        {
            await File.WriteAllTextAsync(world.Dir.Combine("unit-ca.pem"), await ca.Content.ReadAsStringAsync());
        }

        var caBundle = world.Dir.Combine("unit-ca.pem");
        var proxy = $"http://127.0.0.1:{port}";
        var reference = $"{world.Authority}/library/unit:v1";
        var cold = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-cold"), proxy, caBundle, null, false, CancellationToken.None);
        Assert.True(cold.Succeeded, cold + "\n" + await machine.LogAsync());
        var fingerprint = await FingerprintAsync(http);

        // kill -9: Restart=always brings it back, with the same CA and the cache it had.
        await machine.RunAsync("kill", "-9", pid);
        await machine.WaitForAsync("ActiveState=active", "NRestarts=1");
        Assert.Equal(fingerprint, await FingerprintAsync(http));
        await world.KillUpstreamsAsync();
        var offline = await Skopeo.CopyToOciAsync(reference, world.Dir.Combine("oci-offline"), proxy, caBundle, null, false, CancellationToken.None);
        Assert.True(offline.Succeeded, offline + "\n" + await machine.LogAsync());
        foreach (var (digest, bytes) in image.Blobs)
        {
            Assert.Equal(bytes, await File.ReadAllBytesAsync(world.Dir.Combine("oci-offline", "blobs", "sha256", Digests.Hex(digest))));
        }

        // systemctl stop sends SIGTERM: the proxy exits 0, so the unit ends inactive, not failed.
        await machine.RunAsync("systemctl", "stop", "mitmcache");
        await machine.WaitForAsync("ActiveState=inactive", "Result=success");
        Assert.Equal("0", await machine.PropertyAsync("ExecMainStatus"));
    }

    private static async Task<string> FingerprintAsync(HttpClient http)
    {
        using var response = await http.GetAsync("/ca.crt");
        return response.Headers.GetValues("X-Certificate-SHA256").Single();
    }

    /// <summary>systemd as PID 1 of its own PID and mount namespace, sharing the network.</summary>
    private sealed class SystemdNamespace : IAsyncDisposable
    {
        private readonly BackgroundProcess _unshare;

        private SystemdNamespace(BackgroundProcess unshare, int initPid)
        {
            _unshare = unshare;
            InitPid = initPid;
        }

        public int InitPid { get; }

        public static async Task<SystemdNamespace> BootAsync(string stage, IReadOnlyDictionary<string, string> environment, string upstreamCa)
        {
            Directory.CreateDirectory(stage);
            var etc = Path.Combine(stage, "etc");
            var copy = await ProcessRunner.RunAsync("cp", ["-a", "/etc", etc]);
            Assert.True(copy.Succeeded, copy.ToString());

            var units = Path.Combine(etc, "systemd", "system");
            Directory.Delete(units, recursive: true); // none of the machine's own units
            Directory.CreateDirectory(Path.Combine(units, "mitmcache.service.d"));
            File.Copy(RepositoryFiles.Combine("systemd", "mitmcache.service"), Path.Combine(units, "mitmcache.service"));
            await File.WriteAllTextAsync(Path.Combine(units, "mitmcache.service.d", "test.conf"),
                "[Unit]\nDefaultDependencies=no\n[Service]\nStandardOutput=append:/run/mitmcache.log\nStandardError=append:/run/mitmcache.log\n");
            await File.WriteAllTextAsync(Path.Combine(units, "mitmcache-test.target"), "[Unit]\nDescription=MitmCache under test\nWants=mitmcache.service\n");
            foreach (var masked in new[] { "systemd-journald.service", "systemd-journald.socket", "systemd-udevd.service", "tmp.mount",
                "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service", "systemd-tmpfiles-clean.timer" })
            {
                File.CreateSymbolicLink(Path.Combine(units, masked), "/dev/null");
            }

            var config = Path.Combine(etc, "mitmcache");
            Directory.CreateDirectory(config);
            File.Copy(upstreamCa, Path.Combine(config, "upstream-ca.pem"), overwrite: true);
            var runtime = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
            await File.WriteAllLinesAsync(Path.Combine(config, "mitmcache.env"),
                [.. environment.Select(e => $"{e.Key}={e.Value}"), $"DOTNET_ROOT={runtime}"]);
            File.SetUnixFileMode(Path.Combine(config, "mitmcache.env"), UnixFileMode.UserRead | UnixFileMode.UserWrite);

            // Everything from the host is bound before /tmp (where the stage and the build may live) is covered.
            var boot = Path.Combine(stage, "boot.sh");
            await File.WriteAllTextAsync(boot, """
                set -e
                mount --bind "$1/etc" /etc
                mount -t tmpfs tmpfs /opt
                mkdir /opt/mitmcache
                mount --bind -o ro "$2" /opt/mitmcache
                mount -t tmpfs tmpfs /usr/local/bin
                ln -s /opt/mitmcache/mitmcache /usr/local/bin/mitmcache
                for dir in /tmp /var/tmp /run /var/lib /var/cache; do mount -t tmpfs tmpfs "$dir"; done
                exec env -i container=mitmcache-test /lib/systemd/systemd --system --unit=mitmcache-test.target
                """);
            var unshare = BackgroundProcess.Start("unshare",
                ["--pid", "--fork", "--mount", "--propagation", "private", "--mount-proc", "--uts", "--ipc", "/bin/sh", boot, stage, AppContext.BaseDirectory]);
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < s_wait)
            {
                var children = $"/proc/{unshare.Pid}/task/{unshare.Pid}/children";
                if (File.Exists(children) && int.TryParse(File.ReadAllText(children).Trim(), out var init)
                    && File.Exists($"/proc/{init}/comm") && File.ReadAllText($"/proc/{init}/comm").Trim() == "systemd")
                {
                    return new SystemdNamespace(unshare, init);
                }

                Assert.False(unshare.HasExited, $"systemd did not boot:\n{unshare.DescribeOutput()}");
                await Task.Delay(100);
            }

            unshare.Kill();
            throw new TimeoutException($"systemd did not boot:\n{unshare.DescribeOutput()}");
        }

        public async Task<string> RunAsync(string command, params string[] args)
        {
            var result = await ProcessRunner.RunAsync("nsenter", ["-t", InitPid.ToString(CultureInfo.InvariantCulture), "-m", "-p", command, .. args]);
            Assert.True(result.Succeeded, $"{command} {string.Join(' ', args)}: {result}");
            return result.StdOut.Trim();
        }

        public Task<string> PropertyAsync(string name) => RunAsync("systemctl", "show", "mitmcache", "-p", name, "--value");

        public async Task<string> LogAsync() => (await ProcessRunner.RunAsync("nsenter",
            ["-t", InitPid.ToString(CultureInfo.InvariantCulture), "-m", "-p", "cat", "/run/mitmcache.log"])).StdOut;

        /// <summary>Waits until <c>systemctl show</c> lists every one of these <c>Name=value</c> lines.</summary>
        public async Task WaitForAsync(params string[] expected)
        {
            var clock = Stopwatch.StartNew();
            var shown = "";
            while (clock.Elapsed < s_wait)
            {
                var result = await ProcessRunner.RunAsync("nsenter",
                    ["-t", InitPid.ToString(CultureInfo.InvariantCulture), "-m", "-p", "systemctl", "show", "mitmcache"]);
                shown = result.StdOut;
                var lines = shown.Split('\n');
                if (expected.All(e => lines.Contains(e)))
                {
                    return;
                }

                await Task.Delay(200);
            }

            Assert.Fail($"mitmcache.service never reached {string.Join(", ", expected)}:\n" +
                string.Join('\n', shown.Split('\n').Where(l => l.StartsWith("ActiveState=", StringComparison.Ordinal) || l.StartsWith("SubState=", StringComparison.Ordinal)
                    || l.StartsWith("Result=", StringComparison.Ordinal) || l.StartsWith("NRestarts=", StringComparison.Ordinal)))
                + "\n" + await LogAsync());
        }

        public async ValueTask DisposeAsync()
        {
            // PID 1 of the namespace dies, the kernel kills the rest, and the mounts go with the namespace.
            await ProcessRunner.RunAsync("kill", ["-9", InitPid.ToString(CultureInfo.InvariantCulture)]);
            _unshare.Dispose();
        }
    }
}
