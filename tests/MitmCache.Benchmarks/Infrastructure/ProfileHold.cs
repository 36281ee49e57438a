using MitmCache.Tests.Common;

namespace MitmCache.Benchmarks.Infrastructure;

/// <summary>
/// <c>--hold SECONDS</c>: sets up the world and one warm proxy, prints how to reach them, and keeps
/// them up, so that a profiler (perf with DOTNET_PerfMapEnabled=1, EventPipe) can be attached by hand.
/// </summary>
internal static class ProfileHold
{
    public static async Task RunAsync(BenchWorld world, int seconds)
    {
        var size = world.Options.Quick ? 256L << 20 : 1L << 30;
        var big = await world.BlobAsync("big", size);
        var small = await world.BlobAsync("small", 4096);
        using var proxy = await world.StartProxyAsync();
        foreach (var (name, blob) in new[] { ("big", big), ("small", small) })
        {
            await world.ResolveManifestAsync(proxy, name);
            await CurlFetch.GetCheckedAsync(world.BlobUrl(name, blob), CurlRoute.ViaProxy(proxy), http2: false, blob.Size);
        }

        var cold = await world.BlobAsync("c256", 256L << 20);
        Console.WriteLine($"""
            proxy pid {proxy.Pid}, port {proxy.Port}, data {proxy.DataDirectory}
            warm via proxy:  curl -o /dev/null -w '%{"{"}speed_download{"}"}\n' --cacert {proxy.CaPath} -x {proxy.Url} {world.BlobUrl("big", big)}
            nginx:           curl -o /dev/null -w '%{"{"}speed_download{"}"}\n' --cacert {world.Pki.CaCertPath} --connect-to {Hosts.Registry}:{world.Nginx.Port}:127.0.0.1:{world.Nginx.Port} {world.NginxUrl("big")}
            direct registry: curl -o /dev/null -w '%{"{"}speed_download{"}"}\n' --cacert {world.Pki.CaCertPath} --connect-to {Hosts.Registry}:{world.Registry.Port}:127.0.0.1:{world.Registry.Port} {world.BlobUrl("big", big)}
            cold blob (once): {world.BlobUrl("c256", cold)}
            start another proxy: dotnet {world.Options.ProxyDll} run --listen 127.0.0.1:PORT --data DIR --no-default-intercept --intercept {Hosts.Registry} --allow-port {world.Registry.Port} --upstream-ca {world.Pki.CaCertPath} --connect-to {Hosts.Registry}:{world.Registry.Port}:127.0.0.1:{world.Registry.Port}
            holding for {seconds} s
            """);
        await Task.Delay(TimeSpan.FromSeconds(seconds));
    }
}
