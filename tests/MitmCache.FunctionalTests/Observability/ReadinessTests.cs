using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Observability;

/// <summary>
/// <c>/readyz</c> against a data directory that stops being writable while the proxy runs, as a disk
/// remounted read-only after errors does. The proxy fails open (pass-through), so it stays ready but says
/// it is degraded, and why; it is ready without remarks once the directory is writable again.
/// </summary>
public sealed class ReadinessTests
{
    [Fact]
    public async Task Readyz_DataDirectoryRemountedReadOnly_DegradedWithReasonUntilWritableAgain()
    {
        using var dir = TempDir.Create("mitmcache-ready");
        var data = dir.Combine("data");
        var tmp = Path.Combine(data, "tmp");
        Directory.CreateDirectory(tmp);

        // Tests run as root, and root ignores permission bits, but not a read-only mount. The proxy gets a
        // private mount namespace in which data/tmp is bound onto itself, so it can be remounted read-only
        // there (through nsenter) without touching the rest of the machine.
        using var proxy = await ProxyProcess.StartAsync(data, FreePort.Get(), (file, args) => ("/usr/bin/unshare",
            ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", "mount --bind \"$0\" \"$0\" && exec \"$@\"", tmp, file, .. args]));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        await AssertReadyAsync(http, proxy);

        await RemountAsync(proxy, tmp, "ro");
        using (var degraded = await http.GetAsync($"{proxy.Url}/readyz"))
        {
            var body = await degraded.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, degraded.StatusCode);
            Assert.Equal("true", Assert.Single(degraded.Headers.GetValues("X-MitmCache-Degraded")));
            Assert.StartsWith("degraded: cache storage not writable, serving pass-through", body, StringComparison.Ordinal);
            Assert.Contains("Read-only file system", body, StringComparison.Ordinal);
        }

        Assert.Equal("ok\n", await http.GetStringAsync($"{proxy.Url}/healthz")); // alive, only not ready
        await File.WriteAllTextAsync(Path.Combine(tmp, "outside"), "the test's own view of the directory stays writable");
        File.Delete(Path.Combine(tmp, "outside"));

        await RemountAsync(proxy, tmp, "rw");
        await AssertReadyAsync(http, proxy);
    }

    private static async Task AssertReadyAsync(HttpClient http, ProxyProcess proxy)
    {
        using var ready = await http.GetAsync($"{proxy.Url}/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.False(ready.Headers.Contains("X-MitmCache-Degraded"));
        Assert.Equal("ready\n", await ready.Content.ReadAsStringAsync());
    }

    private static async Task RemountAsync(ProxyProcess proxy, string path, string mode)
    {
        var result = await ProcessRunner.RunAsync("/usr/bin/nsenter",
            ["--target", proxy.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--mount", "--", "/usr/bin/mount", "-o", $"remount,bind,{mode}", path]);
        Assert.True(result.Succeeded, result.ToString());
    }
}
