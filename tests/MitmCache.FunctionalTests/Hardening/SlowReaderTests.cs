using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;
using Xunit.Abstractions;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>Slow readers fall behind in the fill's file, not in memory, and never hold up the fill.</summary>
public sealed class SlowReaderTests(ITestOutputHelper output)
{
    [Fact]
    public async Task TwentySlowReaders_OneColdBigBlob_FastReaderFinishes_MemoryStaysBounded()
    {
        var size = (int.TryParse(Environment.GetEnvironmentVariable("MITMCACHE_SLOW_READER_MIB"), out var mib) ? mib : 256) << 20;
        using var dir = TempDir.Create("mitmcache-slow");
        var pki = TestPki.Create(dir.Combine("pki"));
        await using var upstream = await FaultyRegistry.StartAsync(pki);
        var blob = new byte[size];
        new Random(9).NextBytes(blob);
        var digest = upstream.Add(blob);
        var port = FreePort.Get();
        using var proxy = await ProxyProcess.StartAsync(dir.Combine("proxy"), port,
            "--no-default-intercept", "--intercept", upstream.Host, "--allow-port", $"{upstream.Port}",
            "--upstream-ca", pki.CaCertPath, "--connect-to", $"{upstream.Host}:{upstream.Port}:127.0.0.1:{upstream.Port}");
        var url = $"https://{upstream.Authority}/v2/big/blob/blobs/{digest}";
        var baseline = Vm(proxy.Pid, "VmRSS:");

        using var stop = new CancellationTokenSource();
        var slowBytes = new long[20];
        var slow = Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            using var client = ProxyClients.Create(proxy.Url, proxy.CaBundlePath);
            try
            {
                using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, stop.Token);
                await using var body = await response.Content.ReadAsStreamAsync(stop.Token);
                var buffer = new byte[16 * 1024];
                while (true)
                {
                    var read = await body.ReadAsync(buffer, stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    Interlocked.Add(ref slowBytes[i], read);
                    await Task.Delay(100, stop.Token); // about 160 KB/s
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
            {
            }
        })).ToList();

        // The fast client comes once all twenty are reading: the fill is then held by slow readers.
        Assert.True(await Poll.UntilAsync(() => Enumerable.Range(0, slowBytes.Length).All(i => Interlocked.Read(ref slowBytes[i]) > 0), TimeSpan.FromSeconds(30)), "the slow readers did not start");
        var clock = Stopwatch.StartNew();
        using (var fast = ProxyClients.Create(proxy.Url, proxy.CaBundlePath))
        {
            using var response = await fast.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[256 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
            }

            Assert.Equal(digest, "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset()));
        }

        var fastSeconds = clock.Elapsed.TotalSeconds;
        var peak = Vm(proxy.Pid, "VmHWM:");
        await stop.CancelAsync();
        await Task.WhenAll(slow);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{size >> 20} MiB blob, 20 slow readers: fast reader {fastSeconds:0.0} s, slow readers read {slowBytes.Sum() >> 20} MiB in all, proxy RSS baseline {baseline >> 10} MiB, peak {peak >> 10} MiB"));

        Assert.True(slowBytes.All(b => b > 0), "every slow reader was being served");
        Assert.True(slowBytes.Max() < size / 2, "slow readers were really slow");
        Assert.True(peak - baseline < 150 << 10, $"peak RSS grew by {(peak - baseline) >> 10} MiB while 20 readers lagged behind");
    }

    private static long Vm(int pid, string field)
    {
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
