using MitmCache.Benchmarks.Infrastructure;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 2. A cold 1 GiB miss: curl straight from the upstream registry (TLS) against curl through a proxy with
/// an empty cache, which fetches, hashes, writes, fsyncs and commits while it streams. A fresh proxy and
/// data directory for every repetition. Each fresh proxy first fills a 64 MiB blob of its own, so the
/// measured fill runs JIT-compiled code, as in a proxy that has been up for a while. The disk floor
/// (writing and fsyncing the same size, which a verified cache must do before the last byte) is
/// measured in the same run.
/// </summary>
internal static class ColdMissScenario
{
    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 256L << 20 : 1L << 30;
        var label = world.Options.Quick ? "256 MiB" : "1 GiB";
        var blob = await world.BlobAsync(WarmHitScenario.Name, size);
        var url = world.BlobUrl(WarmHitScenario.Name, blob);
        var warmup = await world.BlobAsync("warmup", 64L << 20);
        var registryPid = ProcStat.FindByCommandLine(Path.Combine(Path.GetDirectoryName(world.Registry.StorageRoot)!, "config.yml"));
        foreach (var http2 in new[] { false, true })
        {
            List<double> direct = [], mitm = [], directCpu = [], mitmCpu = [];
            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                var before = ProcStat.CpuTime(registryPid);
                direct.Add((await CurlFetch.GetCheckedAsync(url, world.RegistryRoute, http2, size)).SpeedBytesPerSecond);
                directCpu.Add((ProcStat.CpuTime(registryPid) - before).TotalSeconds);
                var proxy = await world.StartProxyAsync();
                try
                {
                    await CurlFetch.GetCheckedAsync(world.BlobUrl("warmup", warmup), CurlRoute.ViaProxy(proxy), http2, warmup.Size);
                    var proxyBefore = proxy.CpuTime();
                    mitm.Add((await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size)).SpeedBytesPerSecond);
                    mitmCpu.Add((proxy.CpuTime() - proxyBefore).TotalSeconds);
                }
                finally
                {
                    BenchWorld.DiscardProxy(proxy);
                }
            }

            double m = Stats.Median(mitm), d = Stats.Median(direct);
            table.AddRatio($"2 cold miss {label}", $"{(http2 ? "HTTP/2" : "HTTP/1.1")} MB/s vs direct from registry", Stats.Mb(m), Stats.Mb(d) + " (direct)", m / d, atLeast: 0.9);
            double mc = Stats.Median(mitmCpu), dc = Stats.Median(directCpu);
            table.Add(new ResultRow($"2 cold miss {label}", $"{(http2 ? "HTTP/2" : "HTTP/1.1")} CPU s per transfer: proxy vs the registry serving curl directly", $"{mc:0.00} s",
                $"{dc:0.00} s (registry)", $"{ResultTable.F(mc / dc)}× CPU", "—", "—"));
            if (!http2)
            {
                var (write, sync) = DiskFloor(world, size);
                var bound = (size / d) / ((size / d) + sync);
                table.Add(new ResultRow($"2 cold miss {label}", "disk floor: write / fsync the same size (s); best ratio if only the fsync were added",
                    $"{write:0.00} s / {sync:0.00} s", "—", $"{ResultTable.F(bound)}×", "—", "—"));
            }
        }
    }

    /// <summary>Seconds to write <paramref name="size"/> bytes (64 KiB writes, as the fill does) and then to fsync them.</summary>
    private static (double Write, double Sync) DiskFloor(BenchWorld world, long size)
    {
        var path = world.Dir.Combine("disk-floor");
        var buffer = new byte[64 * 1024];
        new Random(7).NextBytes(buffer);
        using var handle = File.OpenHandle(path, FileMode.Create, FileAccess.Write);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (long offset = 0; offset < size; offset += buffer.Length)
        {
            RandomAccess.Write(handle, buffer, offset);
        }

        var write = clock.Elapsed.TotalSeconds;
        clock.Restart();
        RandomAccess.FlushToDisk(handle);
        var sync = clock.Elapsed.TotalSeconds;
        handle.Dispose();
        File.Delete(path);
        return (write, sync);
    }
}
