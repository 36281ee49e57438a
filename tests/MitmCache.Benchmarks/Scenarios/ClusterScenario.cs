using System.Diagnostics;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Upstream;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 13. The cluster tier (docs/cluster.md): three parents sharing one CA, children listing all three, every one a
/// fresh process with an empty cache in each run. One image of four equal layers, pulled as a runtime does (the
/// manifest, then the layers four at a time) with curl through a child. Measured: K = 3 children pulling it cold at
/// once (registry blob GETs from its access log, which must equal the layers; wall time until the last child has
/// every layer) against one child alone; and the failover cost: one child's cold pull with the owner of the first
/// layer killed before it starts, against the same pull with every parent alive.
/// </summary>
internal static class ClusterScenario
{
    private const string Name = "cluster";
    private const int Layers = 4;
    private const int Children = 3;

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 16L << 20 : 64L << 20;
        var layers = Enumerable.Range(0, Layers)
            .Select(i => BlobSeeder.WriteBlob(world.Registry, BenchWorld.Repository(Name), size, 0x5eed_c105UL + (2 * (ulong)i))).ToList(); // odd seeds: the seeder sets the low bit
        await BlobSeeder.PutManifestAsync(world.Registry, BenchWorld.Repository(Name), "latest", layers);
        var label = $"13 cluster tier, 3 parents, {Layers} x {size >> 20} MiB";

        List<double> alone = [], together = [], ownerDead = [];
        var fetches = new List<int>();
        for (var rep = 0; rep < world.Options.Repetitions; rep++)
        {
            alone.Add((await ColdAsync(world, layers, size, children: 1, killOwner: false)).Wall);
            var (wall, blobGets) = await ColdAsync(world, layers, size, Children, killOwner: false);
            together.Add(wall);
            fetches.Add(blobGets);
            ownerDead.Add((await ColdAsync(world, layers, size, children: 1, killOwner: true)).Wall);
        }

        var worst = fetches.Max();
        table.Add(new ResultRow(label, $"{Children} children at once, cold: registry blob GETs (worst of {fetches.Count} runs)", $"{worst}", $"{Layers} (layers)", "—",
            $"= {Layers}", worst == Layers ? "holds" : "MISS"));
        table.AddRatio(label, $"{Children} children at once, cold: wall s vs one child alone", Seconds(Stats.Median(together)), Seconds(Stats.Median(alone)) + " (1 child)",
            Stats.Median(together) / Stats.Median(alone));
        table.AddRatio(label, "owner of a layer dead (kill -9 before the pull): wall s vs every parent alive", Seconds(Stats.Median(ownerDead)),
            Seconds(Stats.Median(alone)) + " (all alive)", Stats.Median(ownerDead) / Stats.Median(alone));
    }

    /// <summary>Fresh parents and children; the image pulled by every child at once; the wall time and the registry's blob GETs.</summary>
    private static async Task<(double Wall, int BlobGets)> ColdAsync(BenchWorld world, IReadOnlyList<SeededBlob> layers, long size, int children, bool killOwner)
    {
        var proxies = new List<ProxyRunner>();
        try
        {
            var parents = await StartParentsAsync(world, proxies);
            var bundle = world.Dir.Combine($"cluster-trust-{parents[0].Port}.pem");
            await File.WriteAllTextAsync(bundle, await File.ReadAllTextAsync(world.Pki.CaCertPath) + "\n" + await File.ReadAllTextAsync(parents[0].CaPath));
            List<string> tier = [.. parents.SelectMany(p => new[] { "--upstream-proxy", p.Url })];
            var kids = new List<ProxyRunner>();
            for (var i = 0; i < children; i++)
            {
                // Children wait longer than their parents (10 s) for an answer, as docs/cluster.md advises, and for a connection
                // (CONNECT through a parent, then TLS through it: two processes on a loaded 2-core machine).
                var child = await world.StartProxyAsync(upstreamCa: bundle, arguments: [.. tier, "--instance-name", $"child{i}", "--upstream-timeout", "30s", "--connect-timeout", "10s"]);
                proxies.Add(child);
                kids.Add(child);
            }

            if (killOwner)
            {
                var members = parents.Select(p => $"127.0.0.1:{p.Port}").ToList();
                var owner = parents[Rendezvous.Rank(members, "blob " + layers[0].Digest)[0]];
                proxies.Remove(owner);
                BenchWorld.DiscardProxy(owner); // killed: its children find out on their first request to it
            }

            try
            {
                var (wall, _) = await world.CountUpstreamAsync(async () =>
                {
                    var clock = Stopwatch.StartNew();
                    await Task.WhenAll(kids.Select(child => PullAsync(world, child, layers, size)));
                    return clock.Elapsed.TotalSeconds;
                });
                return (wall, world.Registry.CountRequests("GET", "/blobs/"));
            }
            catch (InvalidOperationException ex)
            {
                var logs = string.Join("\n----\n", proxies.Select(p => $"{p.Url}: {Tail(p.Output)}"));
                throw new InvalidOperationException($"{ex.Message}\n{logs}", ex);
            }
        }
        finally
        {
            proxies.ForEach(BenchWorld.DiscardProxy);
        }
    }

    /// <summary>Three parents with one root CA: the first makes it, the others start from a copy of its <c>ca</c> directory.</summary>
    private static async Task<List<ProxyRunner>> StartParentsAsync(BenchWorld world, List<ProxyRunner> started)
    {
        var first = await world.StartProxyAsync(arguments: ["--instance-name", "parent0"]);
        started.Add(first);
        List<ProxyRunner> parents = [first];
        for (var i = 1; i < 3; i++)
        {
            var data = world.Dir.Combine($"parent-{first.Port}-{i}");
            Directory.CreateDirectory(data);
            var copy = await MitmCache.Tests.Common.ProcessRunner.RunAsync("cp", ["-a", Path.Combine(first.DataDirectory, "ca"), Path.Combine(data, "ca")]);
            if (!copy.Succeeded)
            {
                throw new InvalidOperationException("copying the cluster CA: " + copy.StdErr);
            }

            var parent = await world.StartProxyAsync(data, arguments: ["--instance-name", $"parent{i}"]);
            started.Add(parent);
            parents.Add(parent);
        }

        return parents;
    }

    /// <summary>As a runtime pulls: the manifest, then every layer at once.</summary>
    private static async Task PullAsync(BenchWorld world, ProxyRunner child, IReadOnlyList<SeededBlob> layers, long size)
    {
        await world.ResolveManifestAsync(child, Name);
        await Task.WhenAll(layers.Select(layer => CurlFetch.GetCheckedAsync(world.BlobUrl(Name, layer), CurlRoute.ViaProxy(child), http2: false, size)));
    }

    private static string Tail(string output) => output.Length > 3000 ? output[^3000..] : output;

    private static string Seconds(double s) => s.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " s";
}
