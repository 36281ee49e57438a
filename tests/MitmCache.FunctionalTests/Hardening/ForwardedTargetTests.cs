using MitmCache.FunctionalTests.Infrastructure;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>
/// What the proxy forwards and what it refuses: the upstream gets the target the client sent, not a
/// rewritten one; requests that are malformed get a 400, never a 5xx blamed on the upstream.
/// </summary>
public sealed class ForwardedTargetTests : IAsyncLifetime
{
    private LoopbackWorld _world = null!;

    public async Task InitializeAsync() => _world = await LoopbackWorld.StartAsync();

    public async Task DisposeAsync() => await _world.DisposeAsync();

    [Theory]
    [InlineData("/a/../b")]
    [InlineData("/x%zz?q=%%")]
    [InlineData("/a\\b")]
    [InlineData("/%7euser/./x")]
    public async Task PlainProxyRequest_OddTarget_ForwardedVerbatim(string path)
    {
        await using var connection = await RawProxyConnection.OpenAsync(_world.Proxy.Port);

        var response = await connection.RoundTripAsync($"GET http://plain.test{path} HTTP/1.1\r\nHost: plain.test\r\n\r\n", TimeSpan.FromSeconds(10));

        Assert.Equal(200, response?.Status);
        Assert.StartsWith($"plain GET {path} 0 ", response!.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Content-Length")]
    [InlineData("chunked")]
    public async Task PlainProxyRequest_LargeBody_ForwardedIntact(string framing)
    {
        var payload = new byte[5 << 20];
        new Random(3).NextBytes(payload);
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(payload))[..16];
        await using var connection = await RawProxyConnection.OpenAsync(_world.Proxy.Port);

        var head = framing == "chunked"
            ? "POST http://plain.test/upload HTTP/1.1\r\nHost: plain.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            : $"POST http://plain.test/upload HTTP/1.1\r\nHost: plain.test\r\nContent-Length: {payload.Length}\r\n\r\n";
        await connection.SendAsync(head);
        for (var offset = 0; offset < payload.Length; offset += 100_000)
        {
            var chunk = payload.AsMemory(offset, Math.Min(100_000, payload.Length - offset));
            if (framing == "chunked")
            {
                await connection.SendAsync($"{chunk.Length:x}\r\n");
                await connection.SendAsync(chunk.ToArray());
                await connection.SendAsync("\r\n");
            }
            else
            {
                await connection.SendAsync(chunk.ToArray());
            }
        }

        if (framing == "chunked")
        {
            await connection.SendAsync("0\r\n\r\n");
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var response = await connection.Reader.ReadAsync(headRequest: false, cancel.Token);

        Assert.Equal(200, response?.Status);
        Assert.Equal($"plain POST /upload {payload.Length} {hash}", response!.BodyText);
    }

    [Fact]
    public async Task Intercepted_ThousandsOfStrayPercents_UpstreamAnswersInsteadOf502()
    {
        // Re-escaped as %25 they tripled past the upstream's request-line limit: it reset the stream, the client got 502.
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);

        var response = await connection.RoundTripAsync($"GET /token?scope={new string('%', 3000)} HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));

        Assert.Equal(404, response?.Status);
        Assert.Equal(1, _world.Registry.CountFor("/token"));
    }

    [Theory]
    [InlineData("/token?service=\r")]
    [InlineData("/other\rpath")]
    [InlineData("/a#b")]
    public async Task Intercepted_TargetWithBareCrOrFragment_400AndNeverForwarded(string path)
    {
        // Kestrel lets a bare CR through in a request target; forwarded verbatim it would split the upstream request line.
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);

        var response = await connection.RoundTripAsync($"GET {path} HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));
        var next = await connection.RoundTripAsync($"GET /v2/ HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));

        Assert.Equal(400, response?.Status);
        Assert.Contains("invalid request target", response!.BodyText, StringComparison.Ordinal);
        Assert.Equal(200, next?.Status);
        Assert.Equal(0, _world.Registry.CountFor("/token") + _world.Registry.CountFor("/other") + _world.Registry.CountFor("/a"));
    }

    [Theory]
    [InlineData("Head", "/v2/team/app/manifests/v1")]
    [InlineData("head", "/v2/team/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000")]
    [InlineData("Head", "/v2/library\\app/blobs/x")]
    [InlineData("get", "/v2/")]
    public async Task Intercepted_StandardMethodInWrongCase_400(string method, string path)
    {
        // "Head" made the registry endpoints answer like HEAD (a length, no body) where Kestrel sends a body: a 500.
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);

        var response = await connection.RoundTripAsync($"{method} {path} HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));

        Assert.Equal(400, response?.Status);
        Assert.Contains("case-sensitive", response!.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello")]
    [InlineData("Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")]
    public async Task BodyThatIsNotValidChunking_400NotBlamedOnUpstream(string headersAndBody)
    {
        await using var plain = await RawProxyConnection.OpenAsync(_world.Proxy.Port);
        await using var intercepted = await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);

        var viaPlain = await plain.RoundTripAsync($"POST http://plain.test/upload HTTP/1.1\r\nHost: plain.test\r\n{headersAndBody}", TimeSpan.FromSeconds(10));
        var viaTunnel = await intercepted.RoundTripAsync($"PATCH /v2/team/app/blobs/uploads/u1 HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n{headersAndBody}", TimeSpan.FromSeconds(10));

        Assert.Equal(400, viaPlain?.Status);
        Assert.Contains("invalid request body", viaPlain!.BodyText, StringComparison.Ordinal);
        Assert.Equal(400, viaTunnel?.Status);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task UpstreamAnswersBeforeTheBodyArrives_AnswerRelayedAndNoReadLeftBehind(bool clientSendsTheRest)
    {
        // The upstream answers a PUT without reading its body; the client has sent 2 of 10 bytes. The upstream
        // client cancelled its copy of the body, which left Kestrel's body reader "in progress": Kestrel could
        // not drain the body at the end of the request, logged an error and dropped the connection.
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var response = await connection.RoundTripAsync(
            $"PUT /v2/team/app/manifests/v9 HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\nContent-Length: 10\r\n\r\n{{}}", TimeSpan.FromSeconds(10));
        var answeredAfter = clock.Elapsed;
        RawResponse? next = null;
        if (clientSendsTheRest)
        {
            // The rest comes once the proxy's handler has returned (it logs the request then), so Kestrel's
            // end-of-request drain is the one that reads it: the path that dropped the connection.
            Assert.True(await _world.Proxy.Log.WaitForAsync(l => l.Contains("\"Method\":\"PUT\"", StringComparison.Ordinal)
                && l.Contains("\"Reference\":\"v9\"", StringComparison.Ordinal)), _world.Proxy.Log.Tail());
            await connection.SendAsync("12345678");
            next = await connection.RoundTripAsync($"GET /v2/ HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));
        }
        else
        {
            // Kestrel's minimum request body data rate (5 s grace) ends the stalled body.
            Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(20)));
        }

        Assert.Equal(404, response?.Status);
        Assert.True(answeredAfter < TimeSpan.FromSeconds(3), $"the answer waited for the body: {answeredAfter}");
        Assert.Equal(clientSendsTheRest ? 200 : null, next?.Status); // the connection stays usable once the body is complete
        var errors = _world.Proxy.Log.Lines.Where(l => l.Contains("\"@l\":\"Error\"", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors));
    }

    [Fact]
    public async Task Intercepted_ThousandsOfStrayPercentsUnderV2_UpstreamAnswersInsteadOf502()
    {
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);

        var response = await connection.RoundTripAsync($"GET /v2/team/app/tags/list?n={new string('%', 3000)} HTTP/1.1\r\nHost: {_world.Registry.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));

        Assert.Equal(404, response?.Status);
    }
}
