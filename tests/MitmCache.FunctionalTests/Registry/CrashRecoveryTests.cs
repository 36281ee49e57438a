using System.Net;
using System.Security.Cryptography;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>kill -9 of the proxy process in the middle of fills, then restart on the same data.</summary>
public sealed class CrashRecoveryTests
{
    [Fact]
    public async Task KillDuringFills_RestartServesNoPartialBlobAndRepullsEverything()
    {
        using var dir = TempDir.Create("mitmcache-crash");
        var pki = TestPki.Create(dir.Combine("pki"));
        await using var upstream = await FaultyRegistry.StartAsync(pki);
        // 20 concurrent fills per round, 10 rounds (MITMCACHE_CRASH_ROUNDS to change), kill -9 at a random point.
        // Every round brings 20 new blobs, so that every kill lands among fills, whatever earlier rounds finished.
        var blobs = new List<byte[]>();
        var rounds = int.TryParse(Environment.GetEnvironmentVariable("MITMCACHE_CRASH_ROUNDS"), out var r) ? r : 10;
        var digests = new List<string>();
        var data = dir.Combine("proxy");
        var port = FreePort.Get();
        string[] arguments =
        [
            "--no-default-intercept", "--intercept", upstream.Host, "--allow-port", $"{upstream.Port}",
            "--upstream-ca", pki.CaCertPath, "--connect-to", $"{upstream.Host}:{upstream.Port}:127.0.0.1:{upstream.Port}",
            "--upstream-timeout", "2s",
        ];
        var random = new Random(7);

        for (var round = 0; round < rounds; round++)
        {
            var fresh = Enumerable.Range(0, 20).Select(_ => RandomNumberGenerator.GetBytes(1_000_000)).ToList();
            var freshDigests = fresh.Select(b => upstream.Add(b)).ToList();
            blobs.AddRange(fresh);
            digests.AddRange(freshDigests);
            using (var proxy = await ProxyProcess.StartAsync(data, port, arguments))
            {
                upstream.Fault = UpstreamFault.Slow;
                var client = CreateClient(proxy);
                var pulls = freshDigests.Select(d => UpstreamFaultTests.TryGetBytesAsync(client, Url(upstream, d))).ToList();
                await WaitForFillsAsync(data);
                await Task.Delay(random.Next(300)); // not a wait for anything: the kill lands at a random point of the fills
                proxy.Kill();
                await Task.WhenAll(pulls);
            }

            // Restarted, upstream refusing: each blob is either served whole and correct, or not at all.
            using (var restarted = await ProxyProcess.StartAsync(data, port, arguments))
            {
                Assert.Empty(Directory.EnumerateFiles(Path.Combine(data, "tmp")));
                upstream.Fault = UpstreamFault.Status503;
                using var client = CreateClient(restarted);
                for (var i = 0; i < blobs.Count; i++)
                {
                    var result = await UpstreamFaultTests.TryGetBytesAsync(client, Url(upstream, digests[i]));
                    if (result.Status == HttpStatusCode.OK && result.Complete)
                    {
                        Assert.Equal(blobs[i], result.Body);
                    }
                }

                AssertStoreVerifies(data);
            }
        }

        using var final = await ProxyProcess.StartAsync(data, port, arguments);
        upstream.Fault = UpstreamFault.None;
        using var finalClient = CreateClient(final);
        for (var i = 0; i < blobs.Count; i++)
        {
            Assert.Equal(blobs[i], await finalClient.GetByteArrayAsync(Url(upstream, digests[i])));
        }

        AssertStoreVerifies(data);
    }

    [Fact]
    public async Task Sigterm_DuringFills_ExitsCleanly_FillsDiscardedOrCompleteNeverHalfIndexed()
    {
        using var dir = TempDir.Create("mitmcache-sigterm");
        var pki = TestPki.Create(dir.Combine("pki"));
        await using var upstream = await FaultyRegistry.StartAsync(pki);
        var blobs = Enumerable.Range(0, 5).Select(_ => RandomNumberGenerator.GetBytes(1_500_000)).ToList();
        var digests = blobs.Select(b => upstream.Add(b)).ToList();
        var data = dir.Combine("proxy");
        var port = FreePort.Get();
        string[] arguments =
        [
            "--no-default-intercept", "--intercept", upstream.Host, "--allow-port", $"{upstream.Port}",
            "--upstream-ca", pki.CaCertPath, "--connect-to", $"{upstream.Host}:{upstream.Port}:127.0.0.1:{upstream.Port}",
        ];

        using (var proxy = await ProxyProcess.StartAsync(data, port, arguments))
        {
            upstream.Fault = UpstreamFault.Slow;
            using var client = CreateClient(proxy);
            var pulls = digests.Select(d => UpstreamFaultTests.TryGetBytesAsync(client, Url(upstream, d))).ToList();
            await WaitForFillsAsync(data);

            var exit = await proxy.TerminateAsync(TimeSpan.FromSeconds(40));

            Assert.Equal(0, exit);
            foreach (var (pull, i) in (await Task.WhenAll(pulls)).Select((p, i) => (p, i)))
            {
                Assert.False(pull.Complete && pull.Status == HttpStatusCode.OK && !pull.Body!.SequenceEqual(blobs[i]), "a cut response must not look complete");
            }
        }

        AssertStoreVerifies(data);
        using var restarted = await ProxyProcess.StartAsync(data, port, arguments);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(data, "tmp")));
        upstream.Fault = UpstreamFault.None;
        using var again = CreateClient(restarted);
        for (var i = 0; i < blobs.Count; i++)
        {
            Assert.Equal(blobs[i], await again.GetByteArrayAsync(Url(upstream, digests[i])));
        }
    }

    /// <summary>Waits until fills are really under way (temp files exist), so the kill lands mid-fill.</summary>
    private static async Task WaitForFillsAsync(string data)
    {
        // Generous: a fresh proxy process on a machine busy with the rest of the suite takes a while.
        await Poll.UntilAsync(() => Directory.EnumerateFiles(Path.Combine(data, "tmp")).Any(), TimeSpan.FromSeconds(20));
        Assert.NotEmpty(Directory.EnumerateFiles(Path.Combine(data, "tmp")));
    }

    private static string Url(FaultyRegistry upstream, string digest) => $"https://{upstream.Authority}/v2/crash/test/blobs/{digest}";

    private static HttpClient CreateClient(ProxyProcess proxy) => ProxyClients.Create(proxy.Url, proxy.CaBundlePath);

    /// <summary>Every stored file hashes to the name it is stored under.</summary>
    private static void AssertStoreVerifies(string data)
    {
        foreach (var file in Directory.EnumerateFiles(Path.Combine(data, "blobs"), "*", SearchOption.AllDirectories))
        {
            Assert.Equal(Path.GetFileName(file), Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file))));
        }
    }
}
