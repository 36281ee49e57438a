using System.Net;
using System.Net.Http.Headers;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>Single-flight fills, Range and HEAD, and eviction, against the real registry.</summary>
public sealed class BlobServingTests
{
    [Fact]
    public async Task TwentyConcurrentClients_OneColdBlob_ExactlyOneUpstreamGetAndNoHead()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/big", "v1", (8 << 20, 41));
        var (digest, bytes) = image.Layers[0];
        var url = $"https://{world.Authority}/v2/library/big/blobs/{digest}";
        world.Registry.ClearAccessLog();

        var clients = Enumerable.Range(0, 20).Select(_ => ProxyClients.Create(world.Proxy)).ToList();
        var results = await Task.WhenAll(clients.Select(c => UpstreamFaultTests.TryGetBytesAsync(c, url)));
        clients.ForEach(c => c.Dispose());

        Assert.All(results, r => Assert.True(r.Complete && r.Body!.SequenceEqual(bytes), $"status {r.Status}, complete {r.Complete}"));

        // The proxy counts each request when its response has ended: once all 20 are in, every upstream
        // GET they made was answered, and the registry's marker line comes after any of them.
        var registry = ("registry", world.Authority);
        PrometheusText metrics = null!;
        Assert.True(await Poll.UntilAsync(async () => (metrics = await world.Proxy.ScrapeMetricsAsync()).Sum("mitmcache_requests_total", registry, ("kind", "blob")) >= 20,
            TimeSpan.FromSeconds(10)), "the proxy did not count 20 blob requests");
        await world.Registry.SyncAccessLogAsync();
        Assert.Equal(1, world.Registry.CountRequests("GET", $"/blobs/{digest}"));
        Assert.Equal(0, world.Registry.CountRequests("HEAD", $"/blobs/{digest}")); // joiners are proven by the owner's answer, not by probes
        Assert.Equal(1, metrics.Value("mitmcache_fills_total"));
        Assert.Equal(1, metrics.Value("mitmcache_requests_total", registry, ("kind", "blob"), ("result", "miss")));
    }

    [Fact]
    public async Task RangeAndHead_OnHitAndOnMiss()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/ranged", "v1", (1 << 20, 51), (300_000, 52));
        var (cold, coldBytes) = image.Layers[0];
        var (warm, warmBytes) = image.Layers[1];
        using var client = ProxyClients.Create(world.Proxy);
        var coldUrl = $"https://{world.Authority}/v2/library/ranged/blobs/{cold}";
        var warmUrl = $"https://{world.Authority}/v2/library/ranged/blobs/{warm}";

        // A Range request on a cold blob starts the fill and answers from the growing file.
        using var coldRange = await SendAsync(client, HttpMethod.Get, coldUrl, "bytes=1000-1999");
        Assert.Equal(HttpStatusCode.PartialContent, coldRange.StatusCode);
        Assert.Equal(coldBytes[1000..2000], await coldRange.Content.ReadAsByteArrayAsync());
        Assert.Equal($"bytes 1000-1999/{coldBytes.Length}", coldRange.Content.Headers.ContentRange!.ToString());

        Assert.Equal(warmBytes, await client.GetByteArrayAsync(warmUrl));
        using var head = await SendAsync(client, HttpMethod.Head, warmUrl, null);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(warmBytes.Length, head.Content.Headers.ContentLength);
        Assert.Equal(warm, head.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal("hit", head.Headers.GetValues(RegistryResponses.ResultHeader).Single());

        using var suffix = await SendAsync(client, HttpMethod.Get, warmUrl, "bytes=-100");
        Assert.Equal(HttpStatusCode.PartialContent, suffix.StatusCode);
        Assert.Equal(warmBytes[^100..], await suffix.Content.ReadAsByteArrayAsync());

        using var open = await SendAsync(client, HttpMethod.Get, warmUrl, "bytes=299000-");
        Assert.Equal(warmBytes[299000..], await open.Content.ReadAsByteArrayAsync());

        using var beyond = await SendAsync(client, HttpMethod.Get, warmUrl, $"bytes={warmBytes.Length}-");
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, beyond.StatusCode);
        Assert.Equal($"bytes */{warmBytes.Length}", beyond.Content.Headers.ContentRange!.ToString());
    }

    [Fact]
    public async Task Eviction_UnderCapWhileReading_ReaderFinishesAndOldestGoes()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { MaxCacheBytes = 3 << 20 });
        var image = await world.PushImageAsync("library/evict", "v1", (1_200_000, 61), (1_200_000, 62), (1_200_000, 63));
        var urls = image.Layers.Select(l => $"https://{world.Authority}/v2/library/evict/blobs/{l.Digest}").ToList();
        using var client = ProxyClients.Create(world.Proxy);
        var cache = world.Proxy.Get<BlobCache>();

        Assert.Equal(image.Layers[0].Bytes, await client.GetByteArrayAsync(urls[0]));

        // Start reading the first blob, stop after a little, then push the cache over its cap.
        using var slowReader = ProxyClients.Create(world.Proxy);
        using var reading = await slowReader.GetAsync(urls[0], HttpCompletionOption.ResponseHeadersRead);
        await using var body = await reading.Content.ReadAsStreamAsync();
        var first = new byte[1000];
        await body.ReadExactlyAsync(first); // the proxy has the file open and is sending it

        Assert.Equal(image.Layers[1].Bytes, await client.GetByteArrayAsync(urls[1]));
        Assert.Equal(image.Layers[2].Bytes, await client.GetByteArrayAsync(urls[2]));
        await cache.FillsEnded(); // the commit, and the eviction it makes room with, follow the client's last byte

        Assert.Null(cache.TryGet(Digest(image.Layers[0].Digest)));
        Assert.True(cache.TotalBytes <= 3 << 20);
        using var rest = new MemoryStream();
        await body.CopyToAsync(rest);
        Assert.Equal(image.Layers[0].Bytes, first.Concat(rest.ToArray()).ToArray());
    }

    [Theory]
    [InlineData("/v2/library/app/blobs/sha256:ABCDEF", "DIGEST_INVALID")]
    [InlineData("/v2/library/app/blobs/sha384:ab", "DIGEST_INVALID")]
    [InlineData("/v2/library/app/blobs/sha256:../../../../etc/passwd", "NAME_INVALID")]
    [InlineData("/v2/library/%2e%2e/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", "NAME_INVALID")]
    [InlineData("/v2/library/../../blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", "NAME_INVALID")]
    [InlineData("/v2/library%2fapp/manifests/latest", "NAME_INVALID")]
    [InlineData("/v2/library/app/manifests/bad%2ftag", "TAG_INVALID")]
    [InlineData("/v2/Library/App/manifests/latest", "NAME_INVALID")]
    public async Task HostilePaths_RegistryErrorAndNothingOnDisk(string path, string code)
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);

        // curl --path-as-is sends the path exactly, where HttpClient would normalize it.
        var result = await Curl.RunAsync("-sS", "--path-as-is", "-w", "\n%{http_code}", "-x", world.Proxy.Url, "--cacert", world.Proxy.CaBundlePath,
            $"https://{world.Authority}{path}");

        Assert.EndsWith("\n400", result.StdOut, StringComparison.Ordinal);
        Assert.Contains(code, result.StdOut, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(world.Dir.Combine("proxy", "blobs"), "*", SearchOption.AllDirectories));
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, string url, string? range)
    {
        var request = new HttpRequestMessage(method, url);
        if (range is not null)
        {
            request.Headers.Range = RangeHeaderValue.Parse(range);
        }

        return client.SendAsync(request);
    }

    private static Digest Digest(string text) => MitmCache.Registry.Digest.TryParse(text, out var d) ? d : throw new ArgumentException(text);
}
