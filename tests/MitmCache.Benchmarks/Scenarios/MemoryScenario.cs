using MitmCache.Benchmarks.Infrastructure;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 6. Peak RSS (VmHWM, reset just before) of the proxy process while 20 clients pull a warm 1 GiB blob
/// together, and again with a 4 GiB blob: memory must not depend on blob size.
/// </summary>
internal static class MemoryScenario
{
    private const int Clients = 20;

    public static async Task RunAsync(BenchWorld world, ResultTable table)
    {
        var small = world.Options.Quick ? 256L << 20 : 1L << 30;
        var large = world.Options.Quick ? 1L << 30 : 4L << 30;
        using var proxy = await world.StartProxyAsync();
        var idle = proxy.Memory().Rss;

        var peakSmall = await PeakWhilePullingAsync(world, proxy, WarmHitScenario.Name, small);
        var peakLarge = await PeakWhilePullingAsync(world, proxy, "big4", large);
        world.DropBlob("big4");

        const string Label = "6 memory";
        table.Add(new ResultRow(Label, $"peak RSS, {Clients} clients × {small >> 20} MiB warm", Mb(peakSmall), Mb(idle) + " (idle)", "—", "≤ 150 MB",
            peakSmall <= 150_000_000 ? "holds" : "MISS"));
        table.AddRatio(Label, $"peak RSS, {Clients} clients × {large >> 20} MiB warm, vs {small >> 20} MiB", Mb(peakLarge), Mb(peakSmall) + $" ({small >> 20} MiB)",
            (double)peakLarge / peakSmall, atMost: 1.1);
    }

    private static async Task<long> PeakWhilePullingAsync(BenchWorld world, ProxyRunner proxy, string name, long size)
    {
        var blob = await world.BlobAsync(name, size);
        await world.ResolveManifestAsync(proxy, name);
        var url = world.BlobUrl(name, blob);
        await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2: false, size); // fill
        proxy.ResetPeak();
        var wall = await ConcurrencyScenario.ManyAsync(url, CurlRoute.ViaProxy(proxy), size, Clients);
        var peak = proxy.Memory().Peak;
        Console.Error.WriteLine($"  {Clients} × {size >> 20} MiB in {wall:0.0} s, peak RSS {peak >> 20} MiB");
        return peak;
    }

    private static string Mb(long bytes) => (bytes / 1e6).ToString("0", System.Globalization.CultureInfo.InvariantCulture) + " MB";
}
