using System.Globalization;
using System.Net;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;
using Xunit.Abstractions;
using MediaTypes = MitmCache.Tests.Common.MediaTypes;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>
/// Bodies the proxy has to hold in memory (manifests, token responses) are read up to a cap and no further,
/// whatever length the upstream announces or does not: measured as the peak resident memory (VmHWM) of a
/// real proxy process, before and after a chunked 200 MB manifest, an endless one and a 100 MB token answer.
/// </summary>
public sealed class HostileBodyTests(ITestOutputHelper output)
{
    /// <summary>Generous: the proxy's own buffers are a few MiB; without the caps it grew by 1-3 GB.</summary>
    private const long MaxGrowthBytes = 300L << 20;

    public static TheoryData<string> Bodies => ["chunked 200 MB manifest", "endless manifest", "100 MB token response"];

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task HugeOrEndlessBody_ReadUpToTheCapOnly_AnsweredWithAClearError(string body)
    {
        using var dir = TempDir.Create("mitmcache-bodies");
        var pki = TestPki.Create(dir.Combine("pki"));
        await using var evil = await HostileRegistry.StartAsync(pki, "evil.test");
        evil.On("/token", HostileRegistry.Flood(100L << 20, "application/json"))
            .On("/v2/big/manifests/", HostileRegistry.Flood(200L << 20, MediaTypes.OciManifest))
            .On("/v2/endless/manifests/", HostileRegistry.Flood(null, MediaTypes.OciManifest))
            .On("/v2/", HostileRegistry.Challenge($"Bearer realm=\"https://{evil.Authority}/token\",service=\"evil\""));
        var (url, cap) = body switch
        {
            "chunked 200 MB manifest" => ($"https://{evil.Authority}/v2/big/manifests/latest", "4 MiB"),
            "endless manifest" => ($"https://{evil.Authority}/v2/endless/manifests/latest", "4 MiB"),
            _ => ($"https://{evil.Authority}/token?service=evil&scope=repository:x:pull", "1 MiB"),
        };
        var port = evil.Port.ToString(CultureInfo.InvariantCulture);
        using var proxy = await ProxyProcess.StartAsync(dir.Combine("proxy"), FreePort.Get(),
            "--intercept", evil.Host, "--allow-port", port, "--connect-to", $"{evil.Host}:{port}:127.0.0.1:{port}",
            "--upstream-ca", pki.CaCertPath, "--upstream-timeout", "30s");
        using var client = ProxyClients.Create(proxy.Url, proxy.CaBundlePath);
        using (var ping = await client.GetAsync($"https://{evil.Authority}/v2/"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, ping.StatusCode); // the realm is now known to the proxy
        }

        var baseline = PeakResidentBytes(proxy.Pid);
        using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
        var text = await ReadAtMostAsync(response, 64 * 1024);
        var growth = PeakResidentBytes(proxy.Pid) - baseline;
        output.WriteLine($"{body}: {(int)response.StatusCode}, VmHWM {(baseline + growth) >> 20} MiB (baseline {baseline >> 20} MiB, growth {growth >> 20} MiB): {text[..Math.Min(text.Length, 200)]}");

        Assert.True(growth < MaxGrowthBytes, $"peak memory grew by {growth >> 20} MiB");
        Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(cap, text, StringComparison.Ordinal);
    }

    private static async Task<string> ReadAtMostAsync(HttpResponseMessage response, int limit)
    {
        await using var stream = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[limit];
        var total = 0;
        int read;
        while (total < limit && (read = await stream.ReadAsync(buffer.AsMemory(total))) > 0)
        {
            total += read;
        }

        return System.Text.Encoding.UTF8.GetString(buffer, 0, total);
    }

    /// <summary>VmHWM of /proc/PID/status: the peak resident set size since the process started.</summary>
    private static long PeakResidentBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
