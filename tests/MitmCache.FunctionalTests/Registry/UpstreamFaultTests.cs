using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using MitmCache.Caching;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using MediaTypes = MitmCache.Tests.Common.MediaTypes;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>
/// An upstream that fails in every way we know: the cache is never poisoned, clients never get a
/// clean end of a bad blob, and cached tags are served stale where upstream is at fault.
/// </summary>
public sealed class UpstreamFaultTests : IAsyncLifetime
{
    private TempDir _dir = null!;
    private FaultyRegistry _upstream = null!;
    private ProxyUnderTest _proxy = null!;

    public async Task InitializeAsync()
    {
        _dir = TempDir.Create("mitmcache-faults");
        var pki = TestPki.Create(_dir.Combine("pki"));
        _upstream = await FaultyRegistry.StartAsync(pki);
        _proxy = await ProxyUnderTest.StartAsync(_upstream.ProxySettings(pki, _dir.Combine("proxy")) with { UpstreamTimeout = TimeSpan.FromSeconds(2) });
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _upstream.DisposeAsync();
        _dir.Dispose();
    }

    [Theory]
    [InlineData(UpstreamFault.Status500)]
    [InlineData(UpstreamFault.Status503)]
    [InlineData(UpstreamFault.Status429)]
    [InlineData(UpstreamFault.Reset)]
    [InlineData(UpstreamFault.Truncate)]
    [InlineData(UpstreamFault.WrongBytes)]
    public async Task BlobFault_ClientGetsNoValidBlob_CacheNotPoisoned_LaterFetchHeals(UpstreamFault fault)
    {
        var bytes = RandomNumberGenerator.GetBytes(1_500_000);
        var digest = _upstream.Add(bytes);
        var url = $"https://{_upstream.Authority}/v2/team/app/blobs/{digest}";
        using var client = ProxyClients.Create(_proxy);

        _upstream.Fault = fault;
        var broken = await TryGetBytesAsync(client, url);

        Assert.False(broken.Complete && broken.Status == HttpStatusCode.OK, "a bad blob must never arrive as a complete 200");
        Assert.Null(_proxy.Get<BlobCache>().TryGet(Parse(digest)));
        Assert.Empty(Directory.EnumerateFiles(_dir.Combine("proxy", "tmp")));

        // A 5xx or 429 marks the upstream down: nothing is asked of it until its probe gets an answer.
        _upstream.Fault = UpstreamFault.None;
        Assert.True(await Poll.UntilAsync(() => _proxy.Get<MitmCache.Upstream.UpstreamHealth>().FindDown(_upstream.Authority) is null,
            MitmCache.Upstream.UpstreamHealth.MaxProbeDelay), "the probe never saw the upstream answer again");
        var healed = await TryGetBytesAsync(client, url);

        Assert.True(healed.Complete, "the fetch after the fault completes");
        Assert.Equal(bytes, healed.Body);
        await _proxy.Get<BlobCache>().FillsEnded(); // the commit follows the client's last byte
        Assert.NotNull(_proxy.Get<BlobCache>().TryGet(Parse(digest)));
    }

    [Fact]
    public async Task BlobStall_TimesOutWithoutCachingAnything()
    {
        var digest = _upstream.Add(RandomNumberGenerator.GetBytes(10_000));
        using var client = ProxyClients.Create(_proxy);
        _upstream.Fault = UpstreamFault.Stall;

        var result = await TryGetBytesAsync(client, $"https://{_upstream.Authority}/v2/team/app/blobs/{digest}");

        Assert.False(result.Status == HttpStatusCode.OK && result.Complete);
        Assert.Null(_proxy.Get<BlobCache>().TryGet(Parse(digest)));
    }

    [Theory]
    [InlineData(UpstreamFault.Status500)]
    [InlineData(UpstreamFault.Status503)]
    [InlineData(UpstreamFault.Status429)]
    [InlineData(UpstreamFault.Reset)]
    [InlineData(UpstreamFault.Stall)]
    [InlineData(UpstreamFault.WrongBytes)]
    public async Task TagManifest_UpstreamFault_ServedStaleFromCache(UpstreamFault fault)
    {
        var manifest = """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"""u8.ToArray();
        var digest = _upstream.Add(manifest, MediaTypes.OciManifest);
        _upstream.Tag("library/app", "v1", digest);
        using var client = ProxyClients.Create(_proxy);
        var url = $"https://{_upstream.Authority}/v2/library/app/manifests/v1";

        var fresh = await GetManifestAsync(client, url);
        Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);

        _upstream.Fault = fault;
        using var stale = await GetManifestAsync(client, url);

        Assert.Equal(HttpStatusCode.OK, stale.StatusCode);
        Assert.Equal("stale", stale.Headers.GetValues(RegistryResponses.ResultHeader).Single());
        Assert.Equal(manifest, await stale.Content.ReadAsByteArrayAsync());
        Assert.Equal(digest, stale.Headers.GetValues("Docker-Content-Digest").Single());
        Assert.Equal(MediaTypes.OciManifest, stale.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task ManifestByDigest_WrongBytes_RejectedNotCached()
    {
        var manifest = """{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"""u8.ToArray();
        var digest = _upstream.Add(manifest, MediaTypes.OciManifest);
        using var client = ProxyClients.Create(_proxy);
        _upstream.Fault = UpstreamFault.WrongBytes;

        using var response = await GetManifestAsync(client, $"https://{_upstream.Authority}/v2/library/app/manifests/{digest}");

        Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(_proxy.Get<BlobCache>().TryGet(Parse(digest)));
    }

    [Fact]
    public async Task TagManifest_NotFoundUpstream_RelayedNotServedStale()
    {
        var manifest = """{"schemaVersion":2,"layers":[]}"""u8.ToArray();
        var digest = _upstream.Add(manifest, MediaTypes.OciManifest);
        _upstream.Tag("library/app", "gone", digest);
        using var client = ProxyClients.Create(_proxy);
        var url = $"https://{_upstream.Authority}/v2/library/app/manifests/gone";
        (await GetManifestAsync(client, url)).Dispose();

        _upstream.Tag("library/app", "gone", "sha256:" + new string('0', 64));
        using var response = await GetManifestAsync(client, url);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    private static Task<HttpResponseMessage> GetManifestAsync(HttpClient client, string url)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(MediaTypes.OciManifest));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(MediaTypes.OciIndex));
        return client.SendAsync(request);
    }

    internal static async Task<(HttpStatusCode Status, byte[]? Body, bool Complete)> TryGetBytesAsync(HttpClient client, string url)
    {
        try
        {
            using var response = await client.GetAsync(url, HttpCompletionOption.ResponseHeadersRead);
            try
            {
                var body = await response.Content.ReadAsByteArrayAsync();
                return (response.StatusCode, body, true);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                return (response.StatusCode, null, false);
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
        {
            return (0, null, false);
        }
    }

    private static Digest Parse(string digest) => Digest.TryParse(digest, out var parsed) ? parsed : throw new ArgumentException(digest);
}
