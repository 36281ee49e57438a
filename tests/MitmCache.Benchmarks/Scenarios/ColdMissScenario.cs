using MitmCache.Benchmarks.Infrastructure;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 2. A cold 1 GiB miss: curl straight from the upstream registry (TLS) against curl through a proxy with
/// an empty cache, which fetches, hashes, writes, fsyncs and commits while it streams, and (HTTP/1.1)
/// through distribution's pull-through cache with empty storage. A fresh proxy, peer and data directory
/// for every repetition. Each fresh proxy first fills a 64 MiB blob of its own, so the measured fill runs
/// JIT-compiled code, as in a proxy that has been up for a while. Measured in the same run: the disk floor
/// (writing and fsyncing the same size, which a verified cache must do before the last byte), the CPU floor
/// (scenario 10) against the proxy's CPU per GiB, and the upstream requests of each path by method.
/// </summary>
internal static class ColdMissScenario
{
    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var size = world.Options.Quick ? 256L << 20 : 1L << 30;
        var label = $"2 cold miss {(world.Options.Quick ? "256 MiB" : "1 GiB")}";
        var perGiB = (double)(1L << 30) / size;
        var blob = await world.BlobAsync(WarmHitScenario.Name, size);
        var url = world.BlobUrl(WarmHitScenario.Name, blob);
        var floor = await world.CpuFloorAsync();
        var registryPid = ProcStat.FindByCommandLine(Path.Combine(Path.GetDirectoryName(world.Registry.StorageRoot)!, "config.yml"));
        foreach (var http2 in new[] { false, true })
        {
            var version = http2 ? "HTTP/2" : "HTTP/1.1";
            List<double> direct = [], mitm = [], peer = [], directCpu = [], mitmCpu = [], peerCpu = [], warmUps = [];
            UpstreamRequests? directRequests = null, mitmRequests = null, peerRequests = null;
            if (world.Options.PerfDirectory is not null)
            {
                await ProfileAsync(world, url, size, http2);
            }

            for (var rep = 0; rep < world.Options.Repetitions; rep++)
            {
                var before = ProcStat.CpuTime(registryPid);
                (var directResult, directRequests) = await world.CountUpstreamAsync(() => CurlFetch.GetCheckedAsync(url, world.RegistryRoute, http2, size));
                direct.Add(directResult.SpeedBytesPerSecond);
                directCpu.Add((ProcStat.CpuTime(registryPid) - before).TotalSeconds * perGiB);

                var proxy = await world.StartProxyAsync();
                try
                {
                    warmUps.Add(await WarmUpAsync(world, proxy, http2));
                    var proxyBefore = proxy.CpuTime();
                    (var result, mitmRequests) = await world.CountUpstreamAsync(() => CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size));
                    mitm.Add(result.SpeedBytesPerSecond);
                    mitmCpu.Add((proxy.CpuTime() - proxyBefore).TotalSeconds * perGiB);
                }
                finally
                {
                    BenchWorld.DiscardProxy(proxy);
                }

                if (!http2)
                {
                    var pullThrough = await PullThroughRegistry.StartAsync(world.Pki, world.Dir.Combine($"pullthrough-cold-{rep}"), world.Registry);
                    try
                    {
                        var peerBefore = pullThrough.CpuTime();
                        (var result, peerRequests) = await world.CountUpstreamAsync(async () =>
                        {
                            var fetched = await CurlFetch.GetCheckedAsync(pullThrough.BlobUrl(BenchWorld.Repository(WarmHitScenario.Name), blob.Digest),
                                pullThrough.Route(world.Pki), http2, size);
                            return await pullThrough.WaitStoredAsync([(blob.Hex, blob.Size)]) ? fetched
                                : throw new TimeoutException("distribution pull-through did not store the cold blob within a minute");
                        });
                        peer.Add(result.SpeedBytesPerSecond);
                        peerCpu.Add((pullThrough.CpuTime() - peerBefore).TotalSeconds * perGiB);
                    }
                    finally
                    {
                        pullThrough.Discard();
                    }
                }
            }

            double m = Stats.Median(mitm), d = Stats.Median(direct);
            table.AddRatio(label, $"{version} MB/s vs direct from registry", Stats.Mb(m), Stats.Mb(d) + " (direct)", m / d, atLeast: 0.5);
            double mc = Stats.Median(mitmCpu), dc = Stats.Median(directCpu);
            table.Add(new ResultRow(label, $"{version} CPU-s per GiB: proxy vs the registry serving curl directly", $"{mc:0.00} s",
                $"{dc:0.00} s (registry)", $"{ResultTable.F(mc / dc)}× CPU", "—", "—"));
            table.AddRatio(label, $"{version} CPU-s per GiB: proxy vs the CPU floor (scenario 10)", $"{mc:0.00} s", $"{floor.Sum:0.00} s (floor)", mc / floor.Sum, atMost: 1.3);
            if (!http2)
            {
                double p = Stats.Median(peer), pc = Stats.Median(peerCpu);
                table.AddRatio(label, $"{version} MB/s vs distribution pull-through", Stats.Mb(m), Stats.Mb(p) + " (distribution)", m / p, atLeast: 2.0);
                table.Add(new ResultRow(label, $"{version} CPU-s per GiB: proxy vs distribution pull-through (its background copy included)", $"{mc:0.00} s",
                    $"{pc:0.00} s (distribution)", $"{ResultTable.F(mc / pc)}× CPU", "—", "—"));
                table.Add(new ResultRow(label, "upstream requests per cold pull: MitmCache vs distribution pull-through (direct)", $"{mitmRequests}",
                    $"{peerRequests} ({directRequests} direct)", "—", "—", "—"));
                var (write, sync) = DiskFloor(world, size);
                var bound = (size / d) / ((size / d) + sync);
                table.Add(new ResultRow(label, "disk floor: write / fsync the same size (s); best ratio if only the fsync were added",
                    $"{write:0.00} s / {sync:0.00} s", "—", $"{ResultTable.F(bound)}×", "—", "—"));
            }
            else
            {
                table.Note($"cold miss: each fresh proxy filled {Stats.Median(warmUps):0} 16 MiB blobs (median) before its JIT settled and the measured fill began.");
                table.Add(new ResultRow(label, $"{version} upstream requests per cold pull (direct)", $"{mitmRequests}", $"{directRequests} (direct)", "—", "—", "—"));
            }
        }
    }

    /// <summary>Fills 16 MiB blobs of its own (a new one each round) until the proxy's JIT has settled (<see cref="ProxyRunner.WarmUpAsync"/>); the fills it took.</summary>
    private static async Task<double> WarmUpAsync(BenchWorld world, ProxyRunner proxy, bool http2) =>
        await proxy.WarmUpAsync(async round =>
        {
            var blob = await world.BlobAsync($"warmup-{round}", 16L << 20);
            await CurlFetch.GetCheckedAsync(world.BlobUrl($"warmup-{round}", blob), CurlRoute.ViaProxy(proxy), http2, blob.Size);
        });

    /// <summary>With <c>--perf</c>: one more cold miss, not measured, on a fresh proxy under perf (<see cref="PerfProfile"/>).</summary>
    private static async Task ProfileAsync(BenchWorld world, string url, long size, bool http2)
    {
        var proxy = await world.StartProxyAsync();
        try
        {
            await WarmUpAsync(world, proxy, http2);
            await PerfProfile.RecordAsync(world, proxy.Pid, $"cold-miss-{(http2 ? "h2" : "h1")}", size / (double)(1L << 30), "GiB",
                () => CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2, size));
        }
        finally
        {
            BenchWorld.DiscardProxy(proxy);
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
