using System.Diagnostics;
using System.Security.Cryptography;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Certificates;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 8. <see cref="LeafCertificateFactory.Mint(string)"/> over 5,000 new hosts, and the same through
/// <see cref="LeafCertificateCache"/> (which adds the SslStreamCertificateContext the TLS callback returns).
/// Baseline: the irreducible crypto, one P-256 key generation plus one ECDSA signature.
/// </summary>
internal static class LeafMintScenario
{
    public static Task RunAsync(BenchWorld world, ResultTable table)
    {
        var count = world.Options.Quick ? 1000 : 5000;
        using var authority = CertificateAuthority.Create([], TimeProvider.System);
        var factory = new LeafCertificateFactory(authority, TimeProvider.System);
        var cache = new LeafCertificateCache(factory, TimeProvider.System, capacity: 16);
        var digest = SHA256.HashData("to be signed"u8);

        for (var i = 0; i < 200; i++)
        {
            factory.Mint($"warm{i}.bench.test").Dispose();
            _ = cache.Get($"warmc{i}.bench.test");
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            key.SignHash(digest);
        }

        List<double> mint = [], cached = [], crypto = [];
        var rounds = 5;
        for (var round = 0; round < rounds; round++)
        {
            crypto.Add(Time(count / rounds, i =>
            {
                using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                key.SignHash(digest);
            }));
            mint.Add(Time(count / rounds, i => factory.Mint($"m{round}-{i}.bench.test").Dispose()));
            cached.Add(Time(count / rounds, i => _ = cache.Get($"c{round}-{i}.bench.test")));
        }

        // A hit, as in every handshake for a host already seen: the TLS callback's look-up. A thread's CPU
        // time rather than the wall clock, so a busy machine disturbs it less.
        var hosts = Enumerable.Range(0, 8).Select(i => $"h{i}.bench.test").ToArray();
        foreach (var host in hosts)
        {
            _ = cache.Get(host);
        }

        List<double> hit = [];
        for (var round = 0; round < rounds; round++)
        {
            hit.Add(ThreadCpuMicroseconds(200_000, i => _ = cache.GetServerOptions(hosts[i & 7])));
        }

        double m = Stats.Median(mint), c = Stats.Median(cached), k = Stats.Median(crypto);
        const string Label = "8 leaf mint";
        table.Add(new ResultRow(Label, $"LeafCertificateFactory.Mint, ms each ({count})", Ms(m), Ms(k) + " (P-256 keygen + sign)", $"{ResultTable.F(m / k)}× cost", "≤ 1 ms",
            m <= 1.0 ? "holds" : "MISS"));
        table.Add(new ResultRow(Label, $"mint + SslStreamCertificateContext (leaf cache miss), ms each", Ms(c), Ms(k) + " (P-256 keygen + sign)", $"{ResultTable.F(c / k)}× cost", "—", "—"));
        table.Add(new ResultRow(Label, "leaf cache hit (the TLS callback's look-up), CPU µs each", $"{Stats.Median(hit):0.000} µs", "—", "—", "—", "—"));
        return Task.CompletedTask;
    }

    /// <summary>CPU microseconds per call of this thread (user + system).</summary>
    private static double ThreadCpuMicroseconds(int count, Action<int> action)
    {
        var before = CpuFloor.ThreadCpuSeconds();
        for (var i = 0; i < count; i++)
        {
            action(i);
        }

        return (CpuFloor.ThreadCpuSeconds() - before) * 1e6 / count;
    }

    /// <summary>Milliseconds per call.</summary>
    private static double Time(int count, Action<int> action)
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
        {
            action(i);
        }

        return clock.Elapsed.TotalMilliseconds / count;
    }

    private static string Ms(double ms) => ms.ToString("0.000", System.Globalization.CultureInfo.InvariantCulture) + " ms";
}
