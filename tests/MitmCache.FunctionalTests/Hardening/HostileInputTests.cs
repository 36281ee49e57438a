using System.Diagnostics;
using System.Net;
using System.Text;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>The real registry behind the proxy, a short header timeout, and nothing reachable beyond loopback.</summary>
public sealed class HostileWorldFixture : IAsyncLifetime
{
    public static readonly TimeSpan HeaderTimeout = TimeSpan.FromSeconds(2);

    public RegistryWorld World { get; private set; } = null!;

    public BuiltImage Image { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // Every name without its own --connect-to rule dials a closed loopback port: no test reaches DNS or the internet.
        var closed = FreePort.Get();
        World = await RegistryWorld.StartAsync(tokenAuth: false, s => s with
        {
            HeaderTimeout = HeaderTimeout,
            ConnectTo = [.. s.ConnectTo, new("", null, "127.0.0.1", closed)],
        });
        Image = await World.PushImageAsync("library/app", "v1", (2048, 71));
    }

    public async Task DisposeAsync() => await World.DisposeAsync();
}

/// <summary>
/// Hostile and malformed input on the proxy port and inside intercepted TLS. Each gets a precise 4xx
/// or a closed connection, never a 5xx of the proxy's own, and nothing lands on disk.
/// </summary>
public sealed class HostileInputTests(HostileWorldFixture fixture) : IClassFixture<HostileWorldFixture>
{
    private static readonly TimeSpan s_answerTimeout = TimeSpan.FromSeconds(15);

    private RegistryWorld World => fixture.World;

    private int Port => World.Proxy.Port;

    public static TheoryData<string> ProxyPortInputs => [.. s_proxyPortInputs.Keys];

    /// <summary>Name → (bytes sent; expected status, 0 for "closed without an answer").</summary>
    private static readonly Dictionary<string, (byte[] Bytes, int Status)> s_proxyPortInputs = new()
    {
        ["connect-no-port"] = (Ascii("CONNECT registry.test HTTP/1.1\r\n\r\n"), 400),
        ["connect-port-0"] = (Ascii("CONNECT registry.test:0 HTTP/1.1\r\n\r\n"), 400),
        ["connect-port-65536"] = (Ascii("CONNECT registry.test:65536 HTTP/1.1\r\n\r\n"), 400),
        ["connect-port-signed"] = (Ascii("CONNECT registry.test:+443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-port-empty"] = (Ascii("CONNECT registry.test: HTTP/1.1\r\n\r\n"), 400),
        ["connect-userinfo"] = (Ascii("CONNECT user:pass@registry.test:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-path"] = (Ascii("CONNECT registry.test:443/x HTTP/1.1\r\n\r\n"), 400),
        ["connect-host-64KiB"] = (Ascii($"CONNECT {new string('a', 64 * 1024)}:443 HTTP/1.1\r\n\r\n"), 431),
        ["connect-host-300-chars"] = (Ascii($"CONNECT {new string('a', 300)}:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-label-64-chars"] = (Ascii($"CONNECT {new string('a', 64)}.test:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-nul-in-host"] = (Ascii("CONNECT regis\0try.test:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-nul-in-header"] = (Ascii("CONNECT registry.test:443 HTTP/1.1\r\nX-A: \0\r\n\r\n"), 400),
        ["connect-utf8-host"] = (Encoding.UTF8.GetBytes("CONNECT bücher.test:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-percent-host"] = (Ascii("CONNECT b%C3%BCcher.test:443 HTTP/1.1\r\n\r\n"), 400),
        // An A-label is a valid name: tunnelled like any other host (here to a closed port, hence 502).
        ["connect-idn-a-label"] = (Ascii("CONNECT xn--bcher-kva.test:443 HTTP/1.1\r\n\r\n"), 502),
        ["connect-ipv6-unbracketed"] = (Ascii("CONNECT ::1:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-ipv6-bad-literal"] = (Ascii("CONNECT [zz::1]:443 HTTP/1.1\r\n\r\n"), 400),
        ["connect-ipv6-unspecified"] = (Ascii("CONNECT [::]:443 HTTP/1.1\r\n\r\n"), 403),
        ["connect-this-host-0.0.0.0"] = (Ascii("CONNECT 0.0.0.0:443 HTTP/1.1\r\n\r\n"), 403),
        ["connect-http2-version"] = (Ascii("CONNECT registry.test:443 HTTP/2.0\r\n\r\n"), 400),
        ["connect-extra-spaces"] = (Ascii("CONNECT  registry.test:443  HTTP/1.1\r\n\r\n"), 400),
        ["connect-bad-header-line"] = (Ascii("CONNECT registry.test:443 HTTP/1.1\r\nno colon here\r\n\r\n"), 400),
        ["connect-10000-headers"] = (Ascii("CONNECT registry.test:443 HTTP/1.1\r\n" + ManyHeaders(10_000) + "\r\n"), 431),
        ["connect-1MiB-header"] = (Ascii($"CONNECT registry.test:443 HTTP/1.1\r\nX-Big: {new string('a', 1 << 20)}\r\n\r\n"), 431),
        ["connect-bare-lf"] = (Ascii("CONNECT registry.test:22 HTTP/1.1\nHost: registry.test:22\n\n"), 403), // RFC 9112 2.2 tolerance; then policy
        ["connect-truncated-head"] = (Ascii("CONNECT registry.test:443 HTTP/1.1\r\nHost: regi"), 0),
        ["request-after-empty-lines"] = (Ascii("\r\n\r\n\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200),
        ["connect-after-empty-lines"] = (Ascii("\r\n\r\nCONNECT registry.test:22 HTTP/1.1\r\n\r\n"), 403),
        ["request-headers-only"] = (Ascii("Host: x\r\n\r\n"), 400),
        ["request-1MiB-header"] = (Ascii($"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {new string('a', 1 << 20)}\r\n\r\n"), 431),
        ["request-10000-headers"] = (Ascii("GET /healthz HTTP/1.1\r\nHost: x\r\n" + ManyHeaders(10_000) + "\r\n"), 431),
        ["request-bare-lf"] = (Ascii("GET /healthz HTTP/1.1\nHost: x\n\n"), 200), // Kestrel reads bare LF as RFC 9112 allows
        ["request-nul-in-target"] = (Ascii("GET /heal\0thz HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
        ["request-http09"] = (Ascii("GET /\r\n\r\n"), 400),
        ["request-garbage"] = ([0x00, 0x01, 0x02, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a], 400),
        ["request-tls-client-hello"] = (ClientHelloStart(), 400),
        ["request-absolute-https"] = (Ascii("GET https://registry.test/v2/ HTTP/1.1\r\nHost: registry.test\r\n\r\n"), 400),
        ["request-absolute-userinfo"] = (Ascii("GET http://u:p@plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n"), 400),
        ["request-absolute-port-0"] = (Ascii("GET http://plain.test:0/ HTTP/1.1\r\nHost: plain.test:0\r\n\r\n"), 403),
        ["request-absolute-port-65536"] = (Ascii("GET http://plain.test:65536/ HTTP/1.1\r\nHost: plain.test:65536\r\n\r\n"), 400),
        ["request-absolute-utf8-host"] = (Encoding.UTF8.GetBytes("GET http://bücher.test/ HTTP/1.1\r\nHost: x\r\n\r\n"), 400),
        ["request-absolute-metadata"] = (Ascii("GET http://169.254.169.254/latest/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"), 403),
        ["request-absolute-self"] = (Ascii("GET http://127.0.0.1:{port}/healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"), 403),
        ["request-absolute-ftp"] = (Ascii("GET ftp://plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n"), 400),
        ["request-asterisk"] = (Ascii("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), 404),
        ["request-bad-punycode-host"] = (Ascii("GET /nowhere HTTP/1.1\r\nHost: xn--\r\n\r\n"), 404), // was 500: Request.Host decodes IDN
        ["request-bad-punycode-host-2"] = (Ascii("GET /nowhere HTTP/1.1\r\nHost: 127.0.0.xn--1:3128\r\n\r\n"), 404),
        ["request-admin-bad-punycode-host"] = (Ascii("GET /admin/cache/stats HTTP/1.1\r\nHost: xn--\r\n\r\n"), 403), // not localhost: refused, not a 500
    };

    [Theory]
    [MemberData(nameof(ProxyPortInputs))]
    public async Task ProxyPort_HostileInput_PreciseStatusOrClosed(string name)
    {
        var (bytes, expected) = s_proxyPortInputs[name];
        var audit = FileSystemAudit.Start(World.Dir.Path, World.Proxy.Settings.DataDirectory, World.Registry.StorageRoot);
        bytes = Encoding.Latin1.GetBytes(Encoding.Latin1.GetString(bytes).Replace("{port}", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));

        var response = await SendAsync(bytes);

        if (expected == 0)
        {
            Assert.True(response is null, $"expected a close, got {response}");
        }
        else
        {
            Assert.True(response?.Status == expected, $"{name}: expected {expected}, got {response?.ToString() ?? "a close"}");
        }

        await AssertHealthyAsync();
        audit.AssertNothingNewOutside();
        FileSystemAudit.AssertDataDirectoryClean(World.Proxy.Settings.DataDirectory);
    }

    [Fact]
    public async Task ProxyPort_OnlyEmptyLines_ClosedByHeaderTimeout()
    {
        await using var connection = await RawProxyConnection.OpenAsync(Port);
        var clock = Stopwatch.StartNew();

        // Kestrel alone would wait its 130 s keep-alive timeout here; a CRLF drip would hold the connection.
        await connection.SendAsync("\r\n\r\n");
        await Task.Delay(HostileWorldFixture.HeaderTimeout / 2);
        await connection.SendAsync("\r\n");

        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(15)), "the connection stayed open");
        Assert.InRange(clock.Elapsed, HostileWorldFixture.HeaderTimeout * 0.5, HostileWorldFixture.HeaderTimeout + TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task ProxyPort_IdleConnectionSendingNothing_ClosedByHeaderTimeout()
    {
        await using var connection = await RawProxyConnection.OpenAsync(Port);
        var clock = Stopwatch.StartNew();

        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(15)), "the connection stayed open");
        Assert.InRange(clock.Elapsed, HostileWorldFixture.HeaderTimeout * 0.5, HostileWorldFixture.HeaderTimeout + TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Tunnel_PlainHttpInsteadOfTls_ClosedAtOnce()
    {
        await using var connection = await OpenTunnelAsync();
        var clock = Stopwatch.StartNew();

        await connection.SendAsync($"GET / HTTP/1.1\r\nHost: {World.Authority}\r\n\r\n");

        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(15)), "the connection stayed open");
        Assert.True(clock.Elapsed < HostileWorldFixture.HeaderTimeout, $"closed only after {clock.Elapsed}");
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task Tunnel_PartialClientHelloThenSilence_ClosedByHandshakeTimeout()
    {
        await using var connection = await OpenTunnelAsync();
        var clock = Stopwatch.StartNew();

        await connection.SendAsync(ClientHelloStart());

        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(15)), "the connection stayed open");
        Assert.InRange(clock.Elapsed, HostileWorldFixture.HeaderTimeout * 0.5, HostileWorldFixture.HeaderTimeout + TimeSpan.FromSeconds(5));
        await AssertHealthyAsync();
    }

    [Fact]
    public async Task Tunnel_SilentAfterConnect_ClosedByHandshakeTimeout()
    {
        await using var connection = await OpenTunnelAsync();
        var clock = Stopwatch.StartNew();

        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(15)), "the connection stayed open");
        Assert.InRange(clock.Elapsed, HostileWorldFixture.HeaderTimeout * 0.5, HostileWorldFixture.HeaderTimeout + TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Tunnel_RandomBytesInsteadOfTls_Closed()
    {
        await using var connection = await OpenTunnelAsync();
        var noise = new byte[4096];
        new Random(7).NextBytes(noise);

        await connection.SendAsync(noise);

        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(15)), "the connection stayed open");
        await AssertHealthyAsync();
    }

    public static TheoryData<string, int, string?> InterceptedPaths()
    {
        var zeros = new string('0', 64);
        var upper = "ABCDEF" + new string('0', 58);
        return new()
        {
            // Digests: unknown algorithms, wrong lengths, uppercase hex, encodings.
            { $"/v2/library/app/blobs/sha256:{upper}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/sha256:{new string('0', 63)}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/sha256:{new string('0', 65)}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/sha512:{zeros}", 400, "DIGEST_INVALID" },
            { "/v2/library/app/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/sha384:{new string('0', 96)}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/SHA256:{zeros}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/sha256+b64:{zeros}", 400, "DIGEST_INVALID" },
            { "/v2/library/app/blobs/sha256:", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/:{zeros}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/blobs/sha256%3a{zeros}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/manifests/sha999:{zeros}", 400, "DIGEST_INVALID" },
            { $"/v2/library/app/manifests/sha256:{upper}", 400, "DIGEST_INVALID" },
            // Names and tags outside the grammar.
            { "/v2/Library/App/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library//app/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/a__b___c/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/app-/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/_app/manifests/v1", 400, "NAME_INVALID" },
            { $"/v2/{new string('a', 256)}/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library/app/manifests/-v1", 400, "TAG_INVALID" },
            { $"/v2/library/app/manifests/{new string('a', 129)}", 400, "TAG_INVALID" },
            { "/v2/library/app/manifests/v1%20", 400, "TAG_INVALID" },
            // Traversal: plain, encoded, overlong UTF-8, backslashes.
            { "/v2/library/app/manifests/..", 400, "NAME_INVALID" },
            { "/v2/library/app/manifests/.", 400, "NAME_INVALID" },
            { "/v2/library/app/manifests/%2e%2e", 400, "TAG_INVALID" },
            { "/v2/library/app/manifests/bad%2ftag", 400, "TAG_INVALID" },
            { "/v2/library/app/blobs/sha256:../../../../etc/passwd", 400, "NAME_INVALID" },
            { $"/v2/library/%2e%2e/blobs/sha256:{zeros}", 400, "NAME_INVALID" },
            { $"/v2/library/%2E%2E/%2E%2E/blobs/sha256:{zeros}", 400, "NAME_INVALID" },
            { $"/v2/library/../../blobs/sha256:{zeros}", 400, "NAME_INVALID" },
            { "/v2/../../../etc/passwd", 400, "NAME_INVALID" },
            { "/v2/..%2f..%2fetc/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library%2fapp/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library%2Fapp/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library\\app/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library\\..\\..\\etc/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library%5capp/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library/%c0%ae%c0%ae/manifests/v1", 400, "NAME_INVALID" },
            { $"/v2/%c0%ae%c0%ae/%c0%ae%c0%ae/blobs/sha256:{zeros}", 400, "NAME_INVALID" },
            { "/v2/%e0%80%ae%e0%80%ae/app/manifests/v1", 400, "NAME_INVALID" },
            { "/v2/library/app/blobs/uploads/../../../x", 400, "NAME_INVALID" },
            // Kestrel refuses these before the proxy sees them: encoded NUL, raw UTF-8, no leading slash.
            { "/v2/library/app%00/manifests/v1", 400, null },
            { $"/v2/library/app/blobs/sha256:{zeros}%00", 400, null },
            { "/v2/caf\u00c3\u00a9/manifests/v1", 400, null },
            { "\\v2\\library\\app\\manifests\\v1", 400, null },
            { "https://registry.test/v2/", 400, null },
        };
    }

    [Theory]
    [MemberData(nameof(InterceptedPaths))]
    public async Task Intercepted_HostilePath_RegistryErrorAndNothingOnDisk(string path, int status, string? code)
    {
        var audit = FileSystemAudit.Start(World.Dir.Path, World.Proxy.Settings.DataDirectory, World.Registry.StorageRoot);
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(Port, World.Authority);

        var response = await connection.RoundTripAsync($"GET {path} HTTP/1.1\r\nHost: {World.Authority}\r\n\r\n", s_answerTimeout);

        Assert.NotNull(response);
        Assert.Equal(status, response.Status);
        if (code is not null)
        {
            Assert.Contains($"\"code\":\"{code}\"", response.BodyText, StringComparison.Ordinal);
            Assert.Equal("rejected", response.Header("X-MitmCache"));
        }

        audit.AssertNothingNewOutside();
        FileSystemAudit.AssertDataDirectoryClean(World.Proxy.Settings.DataDirectory);
    }

    [Fact]
    public async Task Intercepted_UppercaseHexOfARealDigest_RejectedWithoutFetching()
    {
        var (digest, _) = fixture.Image.Layers[0];
        var hex = digest["sha256:".Length..];
        var letter = hex.IndexOfAny("abcdef".ToCharArray());
        World.Registry.ClearAccessLog();
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(Port, World.Authority);

        var response = await connection.RoundTripAsync(
            $"GET /v2/library/app/blobs/sha256:{hex.ToUpperInvariant()} HTTP/1.1\r\nHost: {World.Authority}\r\n\r\n", s_answerTimeout);
        var mixed = await connection.RoundTripAsync(
            $"GET /v2/library/app/blobs/sha256:{hex[..letter]}{char.ToUpperInvariant(hex[letter])}{hex[(letter + 1)..]} HTTP/1.1\r\nHost: {World.Authority}\r\n\r\n", s_answerTimeout);
        var right = await connection.RoundTripAsync($"GET /v2/library/app/blobs/{digest} HTTP/1.1\r\nHost: {World.Authority}\r\n\r\n", s_answerTimeout);

        Assert.Equal(400, response?.Status);
        Assert.Equal(400, mixed?.Status);
        Assert.Equal(200, right?.Status); // the same connection is still good for a correct request
        await World.Registry.SyncAccessLogAsync(); // the three answers are in: any upstream GET they made is logged
        Assert.Equal(1, World.Registry.CountRequests("GET", "/blobs/"));
        FileSystemAudit.AssertDataDirectoryClean(World.Proxy.Settings.DataDirectory);
    }

    [Fact]
    public async Task Intercepted_TagManifestWithAKilobyteAccept_NotA500()
    {
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(Port, World.Authority);

        var response = await connection.RoundTripAsync(
            $"GET /v2/library/app/manifests/v1 HTTP/1.1\r\nHost: {World.Authority}\r\nAccept: application/{new string('x', 1100)}\r\n\r\n", s_answerTimeout);

        Assert.True(response?.Status is >= 200 and < 500, $"got {response}");
    }

    [Fact]
    public async Task Intercepted_HostilePathsOverHttp2_SameRegistryErrors()
    {
        // curl negotiates h2 inside the tunnel; --path-as-is keeps the dots and encodings.
        string[] paths = ["/v2/library/%2e%2e/manifests/v1", "/v2/library/app/blobs/sha256:ABCDEF", "/v2/library%2fapp/manifests/v1", "/v2/library/../../x/manifests/v1"];
        foreach (var path in paths)
        {
            var result = await Curl.RunAsync("-sS", "--http2", "--path-as-is", "-w", "\n%{http_version} %{http_code}", "-x", World.Proxy.Url,
                "--cacert", World.Proxy.CaBundlePath, $"https://{World.Authority}{path}");

            Assert.True(result.StdOut.EndsWith("\n2 400", StringComparison.Ordinal), $"{path}: {result.StdOut} {result.StdErr}");
            Assert.Contains("_INVALID", result.StdOut, StringComparison.Ordinal);
        }

        FileSystemAudit.AssertDataDirectoryClean(World.Proxy.Settings.DataDirectory);
    }

    /// <summary>Sends the bytes and reads one answer. No FIN: Kestrel takes a client's FIN as an abort and would not answer.</summary>
    private async Task<RawResponse?> SendAsync(byte[] bytes)
    {
        await using var connection = await RawProxyConnection.OpenAsync(Port);
        using var cancel = new CancellationTokenSource(s_answerTimeout);
        try
        {
            await connection.SendAsync(bytes, cancel.Token);
        }
        catch (IOException)
        {
            // The proxy may answer and close before it has read everything (431 on a 1 MiB header).
        }

        try
        {
            return await connection.Reader.ReadAsync(headRequest: false, cancel.Token);
        }
        catch (IOException)
        {
            return null; // reset: a close without an answer
        }
    }

    private async Task<RawProxyConnection> OpenTunnelAsync()
    {
        var connection = await RawProxyConnection.OpenAsync(Port);
        var established = await connection.RoundTripAsync($"CONNECT {World.Authority} HTTP/1.1\r\nHost: {World.Authority}\r\n\r\n", s_answerTimeout);
        Assert.Equal(200, established?.Status);
        return connection;
    }

    private async Task AssertHealthyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        Assert.Equal("ok\n", await http.GetStringAsync($"{World.Proxy.Url}/healthz"));
    }

    private static byte[] Ascii(string text) => Encoding.Latin1.GetBytes(text);

    private static string ManyHeaders(int count) => string.Concat(Enumerable.Range(0, count).Select(i => $"X-H{i}: v\r\n"));

    /// <summary>The first bytes of a TLS 1.2 ClientHello record that announces 244 bytes and never sends them.</summary>
    private static byte[] ClientHelloStart() => [0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00, 0xf0, 0x03, 0x03, .. new byte[20]];
}
