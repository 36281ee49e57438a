using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Tests.Common;
using MitmCache.Tunneling;
using Xunit.Abstractions;

namespace MitmCache.FunctionalTests.Hardening;

/// <summary>
/// Generated mutations of valid requests, from a seeded RNG, thrown at the proxy in parallel: CONNECT
/// heads, plain proxy requests and registry requests inside an intercepted tunnel. No input may get a
/// 5xx (every upstream here is healthy, so a 5xx could only be the proxy's own failure), and afterwards
/// the proxy must still answer, hold no connections, have logged no error and written nothing odd.
/// </summary>
/// <remarks>
/// <c>MITMCACHE_FUZZ_INPUTS</c> scales the run (default 40,000: 40-55 s on two shared cores at 700-1,000 inputs/s);
/// <c>MITMCACHE_FUZZ_SEED</c> replays one; <c>MITMCACHE_FUZZ_WORKERS</c> sets the parallelism.
/// Run alone with <c>dotnet test --filter Category=Fuzz</c>.
/// </remarks>
public sealed class RandomInputTests(ITestOutputHelper output)
{
    private const int DefaultInputs = 40_000;
    private const int DefaultSeed = 20261128;
    private const int DefaultWorkers = 24;
    private static readonly TimeSpan s_answerTimeout = TimeSpan.FromSeconds(1);

    private enum Kind
    {
        Connect,
        Plain,
        Tunnel,
    }

    [Fact]
    [Trait("Category", "Fuzz")]
    public async Task RandomInput_MutatedRequests_NoServerErrorAndProxyStaysHealthy()
    {
        var inputs = EnvironmentInt("MITMCACHE_FUZZ_INPUTS", DefaultInputs);
        var seed = EnvironmentInt("MITMCACHE_FUZZ_SEED", DefaultSeed);
        var workers = Math.Max(3, EnvironmentInt("MITMCACHE_FUZZ_WORKERS", DefaultWorkers));
        await using var world = await LoopbackWorld.StartAsync(logLevel: Serilog.Events.LogEventLevel.Warning);
        var image = new OciImageBuilder().AddLayer(100_000, 5).Build();
        foreach (var (digest, bytes) in image.Blobs)
        {
            world.Registry.Add(bytes);
        }

        world.Registry.Tag("team/app", "v1", world.Registry.Add(image.Manifest, image.MediaType));
        var run = new Run(world, image, seed);
        var audit = FileSystemAudit.Start(world.Dir.Path, world.Proxy.Settings.DataDirectory);
        var budgets = new Dictionary<Kind, int>
        {
            [Kind.Connect] = inputs * 3 / 10,
            [Kind.Plain] = inputs * 3 / 10,
            [Kind.Tunnel] = inputs - (2 * (inputs * 3 / 10)),
        };

        var clock = Stopwatch.StartNew();
        var tasks = new List<Task>();
        for (var w = 0; w < workers; w++)
        {
            var kind = (Kind)(w % 3);
            tasks.Add(Task.Run(() => kind == Kind.Connect ? run.ConnectWorkerAsync(budgets[kind]) : run.KeepAliveWorkerAsync(kind, budgets[kind])));
        }

        await Task.WhenAll(tasks);
        clock.Stop();

        output.WriteLine($"seed {seed}: {run.Tried} inputs in {clock.Elapsed.TotalSeconds:F1} s ({run.Tried / clock.Elapsed.TotalSeconds:F0}/s), {workers} workers");
        output.WriteLine($"  by kind: {string.Join(", ", run.ByKind.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}"))}");
        output.WriteLine($"  answers: {string.Join(", ", run.Statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}x{s.Value}"))}");
        output.WriteLine($"  closed without an answer {run.Closed}, no answer within {s_answerTimeout.TotalSeconds:F0} s {run.Stalled}, " +
            $"connections {run.Connections}, TLS handshakes {run.Handshakes}");

        foreach (var (issue, count) in run.KnownIssues)
        {
            output.WriteLine($"  known, reported: {count}x {issue}");
        }

        Assert.True(run.Violations.IsEmpty, $"{run.Violations.Count} inputs got a 5xx (seed {seed}):\n" + string.Join("\n", run.Violations.Take(10)));
        Assert.Equal(inputs, run.Tried);

        // Still healthy: answers, serves a real pull, holds no connections, logged no error.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
        {
            Assert.Equal("ok\n", await http.GetStringAsync($"{world.Proxy.Url}/healthz"));
        }

        using (var client = ProxyClients.Create(world.Proxy))
        {
            Assert.Equal(image.Layers[0].Bytes, await client.GetByteArrayAsync($"https://{world.Registry.Authority}/v2/team/app/blobs/{image.Layers[0].Digest}"));
        }

        var limiter = world.Proxy.Get<ConnectionLimiter>();
        await Poll.UntilAsync(() => limiter.Open == 0, TimeSpan.FromSeconds(10));
        Assert.Equal(0, limiter.Open);
        var errors = world.Proxy.Log.Lines
            .Where(l => l.Contains("\"@l\":\"Error\"", StringComparison.Ordinal) || l.Contains("\"@l\":\"Fatal\"", StringComparison.Ordinal))
            .Where(l => !l.Contains("Index key must be less than 1023 bytes", StringComparison.Ordinal)) // the known 500 above
            .ToList();
        Assert.True(errors.Count == 0, $"{errors.Count} errors logged:\n{string.Join("\n", errors.Take(5).Select(e => e[..Math.Min(e.Length, 1500)]))}");
        FileSystemAudit.AssertDataDirectoryClean(world.Proxy.Settings.DataDirectory);
        audit.AssertNothingNewOutside();
    }

    /// <summary>
    /// Kestrel answers a request line whose version is not <c>HTTP/1.0</c> or <c>HTTP/1.1</c> (<c>http/1.1</c>,
    /// <c>HTTP/1:1</c>) with 505 before the proxy sees it: a precise answer to the client's error, not a failure.
    /// </summary>
    private static bool HasValidVersion(byte[] input)
    {
        var line = input.AsSpan();
        line = line[..(line.IndexOf((byte)'\n') is var end and >= 0 ? end : line.Length)].TrimEnd((byte)'\r');
        return line.EndsWith(" HTTP/1.1"u8) || line.EndsWith(" HTTP/1.0"u8);
    }

    /// <summary>5xx answers with a known, reported cause (none open): counted and printed, not failed.</summary>
    private static string? KnownIssue(byte[] input, RawResponse response) => null;

    private static int EnvironmentInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;

    /// <summary>The shared state of one fuzz run: seeds, input counters and what came back.</summary>
    private sealed class Run
    {
        private readonly LoopbackWorld _world;
        private readonly int _seed;
        private readonly Dictionary<Kind, string[]> _seeds;
        private readonly ConcurrentDictionary<Kind, int> _next = new();
        private int _tried;
        private int _closed;
        private int _stalled;
        private int _connections;
        private int _handshakes;

        public Run(LoopbackWorld world, BuiltImage image, int seed)
        {
            _world = world;
            _seed = seed;
            var registry = world.Registry.Authority;
            var blob = image.Layers[0].Digest;
            const string Oci = "application/vnd.oci.image.manifest.v1+json";
            _seeds = new()
            {
                [Kind.Connect] =
                [
                    $"CONNECT {registry} HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"CONNECT {registry} HTTP/1.1\r\nHost: {registry}\r\nProxy-Connection: keep-alive\r\nUser-Agent: containerd/2.0\r\n\r\n",
                    "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n",
                    "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
                    $"CONNECT 127.0.0.1:{world.Registry.Port} HTTP/1.0\r\n\r\n",
                ],
                [Kind.Plain] =
                [
                    "GET http://plain.test/hello?x=1 HTTP/1.1\r\nHost: plain.test\r\nUser-Agent: curl/8.14\r\nAccept: */*\r\n\r\n",
                    "HEAD http://plain.test/ HTTP/1.1\r\nHost: plain.test\r\n\r\n",
                    "GET http://plain.test:8080/ HTTP/1.1\r\nHost: plain.test:8080\r\n\r\n",
                    "POST http://plain.test/upload HTTP/1.1\r\nHost: plain.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
                    "GET http://127.0.0.1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    "GET /ca.crt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                    "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
                    "POST /admin/auth/revoke?registry=faulty.test HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                    "GET /admin/cache/stats HTTP/1.1\r\nHost: localhost\r\n\r\n",
                    "GET /admin/cache/entries?limit=5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                ],
                [Kind.Tunnel] =
                [
                    $"GET /v2/ HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"GET /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: {registry}\r\nAccept: {Oci}, application/vnd.oci.image.index.v1+json\r\n\r\n",
                    $"HEAD /v2/team/app/manifests/v1 HTTP/1.1\r\nHost: {registry}\r\nAccept: {Oci}\r\n\r\n",
                    $"GET /v2/team/app/manifests/{image.ManifestDigest} HTTP/1.1\r\nHost: {registry}\r\nAccept: {Oci}\r\n\r\n",
                    $"GET /v2/team/app/blobs/{blob} HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"GET /v2/team/app/blobs/{blob} HTTP/1.1\r\nHost: {registry}\r\nRange: bytes=10-99\r\n\r\n",
                    $"HEAD /v2/library/app/blobs/{blob} HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"GET /v2/team/app/tags/list?n=10 HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"POST /v2/team/app/blobs/uploads/ HTTP/1.1\r\nHost: {registry}\r\nContent-Length: 0\r\n\r\n",
                    $"PUT /v2/team/app/manifests/v2 HTTP/1.1\r\nHost: {registry}\r\nContent-Type: {Oci}\r\nContent-Length: 2\r\n\r\n{{}}",
                    $"DELETE /v2/team/app/blobs/{blob} HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"GET /token?scope=repository:team/app:pull&service=faulty.test HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                    $"GET /other/path?x=1 HTTP/1.1\r\nHost: {registry}\r\n\r\n",
                ],
            };
        }

        public int Tried => _tried;
        public int Closed => _closed;
        public int Stalled => _stalled;
        public int Connections => _connections;
        public int Handshakes => _handshakes;
        public ConcurrentDictionary<Kind, int> ByKind { get; } = new();
        public ConcurrentDictionary<int, int> Statuses { get; } = new();
        public ConcurrentQueue<string> Violations { get; } = new();
        public ConcurrentDictionary<string, int> KnownIssues { get; } = new();

        /// <summary>One fresh connection per CONNECT input: a 200 turns the connection into a tunnel.</summary>
        public async Task ConnectWorkerAsync(int budget)
        {
            while (TryTake(Kind.Connect, budget, out var index, out var input))
            {
                await using var connection = await OpenAsync(intercepted: false);
                await ExchangeAsync(connection, Kind.Connect, index, input);
            }
        }

        /// <summary>Sends input after input on one kept-alive connection, opening a new one whenever the proxy closes it.</summary>
        public async Task KeepAliveWorkerAsync(Kind kind, int budget)
        {
            RawProxyConnection? connection = null;
            try
            {
                while (TryTake(kind, budget, out var index, out var input))
                {
                    connection ??= await OpenAsync(intercepted: kind == Kind.Tunnel);
                    if (!await ExchangeAsync(connection, kind, index, input))
                    {
                        await connection.DisposeAsync();
                        connection = null;
                    }
                }
            }
            finally
            {
                if (connection is not null)
                {
                    await connection.DisposeAsync();
                }
            }
        }

        private bool TryTake(Kind kind, int budget, out int index, out byte[] input)
        {
            index = _next.AddOrUpdate(kind, 0, (_, n) => n + 1);
            input = index < budget ? RequestMutator.Create(_seeds[kind], _seed + (int)kind, index) : [];
            return index < budget;
        }

        private async Task<RawProxyConnection> OpenAsync(bool intercepted)
        {
            Interlocked.Increment(ref _connections);
            if (!intercepted)
            {
                return await RawProxyConnection.OpenAsync(_world.Proxy.Port);
            }

            Interlocked.Increment(ref _handshakes);
            return await RawProxyConnection.OpenInterceptedAsync(_world.Proxy.Port, _world.Registry.Authority);
        }

        /// <summary>Sends one input and checks the answer; false when the connection is no longer usable.</summary>
        private async Task<bool> ExchangeAsync(RawProxyConnection connection, Kind kind, int index, byte[] input)
        {
            Interlocked.Increment(ref _tried);
            ByKind.AddOrUpdate(kind, 1, (_, n) => n + 1);
            using var timeout = new CancellationTokenSource(s_answerTimeout);
            RawResponse? response;
            try
            {
                await connection.SendAsync(input, timeout.Token);
                response = await connection.Reader.ReadAsync(input.AsSpan().StartsWith("HEAD "u8), timeout.Token);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _stalled);
                return false;
            }
            catch (Exception ex) when (ex is IOException or InvalidDataException or System.Net.Sockets.SocketException)
            {
                Interlocked.Increment(ref _closed);
                return false;
            }

            if (response is null)
            {
                Interlocked.Increment(ref _closed);
                return false;
            }

            Statuses.AddOrUpdate(response.Status, 1, (_, n) => n + 1);
            if (response.Status >= 500 && !(response.Status == 505 && !HasValidVersion(input)))
            {
                if (KnownIssue(input, response) is { } known)
                {
                    KnownIssues.AddOrUpdate(known, 1, (_, n) => n + 1);
                }
                else
                {
                    Violations.Enqueue($"[{kind} #{index}] {RequestMutator.Describe(input)}\n    -> {response}");
                }
            }

            return kind != Kind.Connect && !response.Closes;
        }
    }
}
