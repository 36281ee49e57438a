using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using MitmCache.Core.Tests;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;
using MitmCache.Upstream;
using MediaTypes = MitmCache.Tests.Common.MediaTypes;

namespace MitmCache.FunctionalTests.Registry;

/// <summary>
/// What marks an upstream down and what does not, what a down upstream is asked (nothing but the probe), and
/// upstream questions asked once for every client waiting on the answer. Against <see cref="FaultyRegistry"/>,
/// which answers slowly, with 503 or 429 on demand, and counts what it is asked.
/// </summary>
public sealed class UpstreamHealthTests : IAsyncLifetime
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan UpstreamTimeout = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _clock = new(DateTimeOffset.UtcNow);
    private TempDir _dir = null!;
    private FaultyRegistry _upstream = null!;
    private ProxyUnderTest _proxy = null!;

    public async Task InitializeAsync()
    {
        _dir = TempDir.Create("mitmcache-health");
        var pki = TestPki.Create(_dir.Combine("pki"));
        _upstream = await FaultyRegistry.StartAsync(pki);
        _proxy = await ProxyUnderTest.StartAsync(_upstream.ProxySettings(pki, _dir.Combine("proxy")) with
        {
            ConnectTimeout = ConnectTimeout,
            UpstreamTimeout = UpstreamTimeout,
        }, time: _clock);
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _upstream.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task SlowUpstream_AnswersInsideTheTimeout_IsNotMarkedDown()
    {
        var url = TagManifest("slow", out _);
        using var client = ProxyClients.Create(_proxy);
        Assert.Equal("miss", await ResultOfAsync(client, url));

        _upstream.Delay = TimeSpan.FromSeconds(8);
        var clock = Stopwatch.StartNew();
        Assert.Equal("miss", await ResultOfAsync(client, url)); // upstream's answer, however slow, not the cache's
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(8));

        Assert.Equal(1, await UpValueAsync());
        Assert.DoesNotContain(_proxy.Log.Lines, IsDownLine);
        _upstream.Delay = TimeSpan.Zero;
        Assert.Equal("miss", await ResultOfAsync(client, url));
    }

    [Theory]
    [InlineData(UpstreamFault.Status503)]
    [InlineData(UpstreamFault.Status429)]
    public async Task FaultAnswer_MarksDown_AskedNothingButTheProbeUntilItAnswers(UpstreamFault fault)
    {
        var url = TagManifest("faulty", out _);
        using var client = ProxyClients.Create(_proxy);
        Assert.Equal("miss", await ResultOfAsync(client, url));

        _upstream.FaultPing = true;
        _upstream.Fault = fault;
        Assert.Equal("stale", await ResultOfAsync(client, url));
        var asked = _upstream.CountFor("/manifests/");
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("stale", await ResultOfAsync(client, url));
        }

        Assert.Equal(asked, _upstream.CountFor("/manifests/")); // known down: not asked again
        Assert.Equal(0, await UpValueAsync());
        using (var http = new HttpClient())
        using (var ready = await http.GetAsync($"{_proxy.Url}/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Contains($"degraded: upstream {_upstream.Authority} down", await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        _upstream.Fault = UpstreamFault.None;
        Assert.True(await Poll.UntilAsync(async () => await UpValueAsync() == 1, UpstreamHealth.MaxProbeDelay + UpstreamTimeout), "the probe never saw it answer");
        Assert.Equal("miss", await ResultOfAsync(client, url));
        Assert.Single(_proxy.Log.Lines, IsDownLine);
        // The state flips before the recovery is logged: wait for the line, then count it.
        static bool IsUpLine(string l) => l.Contains("\"EventId\":{\"Id\":207", StringComparison.Ordinal);
        Assert.True(await Poll.UntilAsync(() => Task.FromResult(_proxy.Log.Lines.Any(IsUpLine)), UpstreamTimeout), "the recovery was never logged");
        Assert.Single(_proxy.Log.Lines, IsUpLine);
    }

    [Fact]
    public async Task StillPublicProbe_SharedByEveryClientWaiting_FirstClientLeavingFailsNoOther()
    {
        var bytes = RandomNumberGenerator.GetBytes(50_000);
        var digest = _upstream.Add(bytes);
        var url = $"https://{_upstream.Authority}/v2/team/shared/blobs/{digest}";
        using (var warm = ProxyClients.Create(_proxy))
        {
            Assert.Equal(bytes, await warm.GetByteArrayAsync(url)); // cached, linked, the repository public
        }

        await _proxy.Get<MitmCache.Caching.BlobCache>().FillsEnded(); // the fill records its link and grant after the client's last byte
        _clock.Advance(_proxy.Settings.ManifestTtl + TimeSpan.FromMinutes(1)); // "public" must be proven again
        _upstream.DelayedMethod = "HEAD";
        _upstream.Delay = TimeSpan.FromSeconds(2);
        using var leaving = ProxyClients.Create(_proxy);
        using var leaves = new CancellationTokenSource();
        var first = leaving.GetByteArrayAsync(url, leaves.Token);
        Assert.True(await Poll.UntilAsync(() => _upstream.CountFor("HEAD /v2/team/shared/") == 1, TimeSpan.FromSeconds(5)));
        var others = Enumerable.Range(0, 5).Select(async _ =>
        {
            using var client = ProxyClients.Create(_proxy);
            return await client.GetByteArrayAsync(url);
        }).ToList();
        await leaves.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first);

        foreach (var other in others)
        {
            Assert.Equal(bytes, await other);
        }

        Assert.Equal(1, _upstream.CountFor("HEAD /v2/team/shared/"));
        Assert.Equal(1, _upstream.CountFor("GET /v2/team/shared/"));
    }

    [Fact]
    public async Task TwentyClientsOnOneColdBlob_OneGetAndAtMostOneHeadUpstream()
    {
        var bytes = RandomNumberGenerator.GetBytes(2_000_000);
        var digest = _upstream.Add(bytes);
        var url = $"https://{_upstream.Authority}/v2/team/cold/blobs/{digest}";
        _upstream.Fault = UpstreamFault.Slow; // about 0.6 s of body: every client arrives while the fill runs

        var pulls = Enumerable.Range(0, 20).Select(async _ =>
        {
            using var client = ProxyClients.Create(_proxy);
            return await client.GetByteArrayAsync(url);
        }).ToList();

        foreach (var pull in pulls)
        {
            Assert.Equal(bytes, await pull);
        }

        Assert.Equal(1, _upstream.CountFor("GET /v2/team/cold/"));
        Assert.True(_upstream.CountFor("HEAD /v2/team/cold/") <= 1, $"{_upstream.CountFor("HEAD /v2/team/cold/")} HEADs upstream");
    }

    private string TagManifest(string repository, out string digest)
    {
        var manifest = System.Text.Encoding.UTF8.GetBytes(
            $$$"""{"schemaVersion":2,"mediaType":"{{{MediaTypes.OciManifest}}}","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"repository":"{{{repository}}}"}}""");
        digest = _upstream.Add(manifest, MediaTypes.OciManifest);
        _upstream.Tag($"team/{repository}", "v1", digest);
        return $"https://{_upstream.Authority}/v2/team/{repository}/manifests/v1";
    }

    private static async Task<string> ResultOfAsync(HttpClient client, string url)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(MediaTypes.OciManifest));
        using var response = await client.SendAsync(request);
        return response.Headers.TryGetValues(RegistryResponses.ResultHeader, out var result) ? result.Single() : $"status {(int)response.StatusCode}";
    }

    private async Task<double> UpValueAsync() =>
        (await _proxy.ScrapeMetricsAsync()).Value("mitmcache_upstream_up", ("upstream", _upstream.Authority));

    private bool IsDownLine(string line) =>
        line.Contains("\"EventId\":{\"Id\":206", StringComparison.Ordinal) && line.Contains(_upstream.Authority, StringComparison.Ordinal);
}
