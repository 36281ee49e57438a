using MitmCache.Benchmarks.Infrastructure;

namespace MitmCache.Benchmarks.Scenarios;

/// <summary>
/// 6. Peak RSS (VmHWM, reset just before) of the proxy process while 20 clients pull a warm 1 GiB blob
/// together, and again with a 4 GiB blob: memory must not depend on blob size. Then 20 clients on a cold
/// 1 GiB blob at once: one fill and 19 readers following it (issue 18: ≤ 150 MB).
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
        var peakCold = await PeakWhilePullingAsync(world, proxy, "cold1g", small, warm: false);
        world.DropBlob("cold1g");

        const string Label = "6 memory";
        table.Add(new ResultRow(Label, $"peak RSS, {Clients} clients × {small >> 20} MiB warm", Mb(peakSmall), Mb(idle) + " (idle)", "—", "≤ 150 MB",
            peakSmall <= 150_000_000 ? "holds" : "MISS"));
        table.AddRatio(Label, $"peak RSS, {Clients} clients × {large >> 20} MiB warm, vs {small >> 20} MiB", Mb(peakLarge), Mb(peakSmall) + $" ({small >> 20} MiB)",
            (double)peakLarge / peakSmall, atMost: 1.1);
        table.Add(new ResultRow(Label, $"peak RSS, {Clients} clients × {small >> 20} MiB cold (one fill, the others following it)", Mb(peakCold), Mb(idle) + " (idle)", "—", "≤ 150 MB",
            peakCold <= 150_000_000 ? "holds" : "MISS"));
    }

    private static async Task<long> PeakWhilePullingAsync(BenchWorld world, ProxyRunner proxy, string name, long size, bool warm = true)
    {
        var blob = await world.BlobAsync(name, size);
        await world.ResolveManifestAsync(proxy, name);
        var url = world.BlobUrl(name, blob);
        if (warm)
        {
            await CurlFetch.GetCheckedAsync(url, CurlRoute.ViaProxy(proxy), http2: false, size); // fill
        }

        proxy.ResetPeak();
        var wall = await ConcurrencyScenario.ManyAsync(url, CurlRoute.ViaProxy(proxy), size, Clients);
        var peak = proxy.Memory().Peak;
        Console.Error.WriteLine($"  {Clients} × {size >> 20} MiB {(warm ? "warm" : "cold")} in {wall:0.0} s, peak RSS {peak >> 20} MiB");
        return peak;
    }

    private static string Mb(long bytes) => (bytes / 1e6).ToString("0", System.Globalization.CultureInfo.InvariantCulture) + " MB";
}
