using System.Diagnostics;
using MitmCache.Benchmarks.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 3. A whole 10-layer image pulled by real clients, skopeo (to an OCI dir) and <c>ctr content fetch</c>
/// (a private containerd per pull, so its content store is empty): straight from the registry (the
/// client gets registry.test from a private /etc/hosts) against a cold proxy and then the same proxy warm.
/// </summary>
internal static class ImagePullScenario
{
    private const string Repository = "bench/image";

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var layerSize = world.Options.Quick ? 5 << 20 : 50 << 20;
        var builder = new OciImageBuilder();
        for (var i = 0; i < 10; i++)
        {
            builder.AddLayer(layerSize, seed: 1000 + i);
        }

        var image = builder.Build();
        var total = image.Layers.Sum(l => (long)l.Bytes.Length);
        Console.Error.WriteLine($"  pushing a 10-layer image, {total >> 20} MiB");
        using (var http = world.Registry.CreateClient(TimeSpan.FromMinutes(5)))
        {
            await new RegistryPusher(http, world.Registry.Authority).PushAsync(Repository, "latest", image, CancellationToken.None);
        }

        var reference = $"{world.Registry.Authority}/{Repository}:latest";
        var hosts = PrivateHosts.WriteFile(world.Dir.Combine("client-hosts"), Hosts.Registry);
        var label = $"3 image pull 10 layers {total >> 20} MiB";

        foreach (var client in new[] { "skopeo", "ctr" })
        {
            List<double> direct = [], cold = [], warm = [];
            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                direct.Add(await PullAsync(world, client, reference, proxy: null, hosts));
                var proxy = await world.StartProxyAsync();
                try
                {
                    cold.Add(await PullAsync(world, client, reference, proxy, hosts));
                    warm.Add(await PullAsync(world, client, reference, proxy, hosts));
                }
                finally
                {
                    BenchWorld.DiscardProxy(proxy);
                }
            }

            double d = Stats.Median(direct), c = Stats.Median(cold), w = Stats.Median(warm);
            table.AddRatio(label, $"{client} cold: s (speed vs direct)", Seconds(c), Seconds(d) + " (direct)", d / c);
            table.AddRatio(label, $"{client} warm: s (speed vs direct)", Seconds(w), Seconds(d) + " (direct)", d / w);
        }
    }

    private static string Seconds(double s) => s.ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " s";

    /// <summary>One pull into an empty client store; returns its wall time in seconds.</summary>
    internal static async Task<double> PullAsync(BenchWorld world, string client, string reference, ProxyRunner? proxy, string hosts)
    {
        var ca = proxy?.CaPath ?? world.Pki.CaCertPath;
        var hostsFile = proxy is null ? hosts : null;
        using var dir = TempDir.Create("mitmcache-bench-pull");
        ProcessResult result;
        Stopwatch clock;
        if (client == "skopeo")
        {
            clock = Stopwatch.StartNew();
            result = await Skopeo.CopyToOciAsync(reference, dir.Combine("oci"), proxy?.Url, ca, creds: null, all: false, hostsFile, CancellationToken.None);
        }
        else
        {
            await using var containerd = await ContainerdServer.StartAsync(dir.Combine("containerd"), CancellationToken.None);
            clock = Stopwatch.StartNew();
            result = await containerd.ContentFetchAsync(reference, proxy?.Url, ca, user: null, allPlatforms: false, hostsFile, CancellationToken.None);
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        return result.Succeeded ? elapsed : throw new InvalidOperationException($"{client} pull of {reference} failed: {result}");
    }
}
