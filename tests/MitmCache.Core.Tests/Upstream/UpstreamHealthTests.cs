using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

/// <summary>
/// Up and down: what marks a host down, that it is said once, that requests waiting on it are let go, that its
/// connections are closed (for a network fault only), the probe back-off, and the request watchdog on loopback.
/// </summary>
public sealed class UpstreamHealthTests : IDisposable
{
    private readonly EventCounter _log = new();
    private readonly List<IDisposable> _disposables = [];

    public void Dispose() => _disposables.ForEach(d => d.Dispose());

    [Theory]
    [InlineData(0, 1000, 1)] // first outage
    [InlineData(1, 0.5, 2)] // down again half a second after a probe saw it up: flapping, probe less often
    [InlineData(16, 3, 30)] // doubling stops at the cap
    [InlineData(30, 3, 30)]
    [InlineData(8, 60, 1)] // up for a minute: a new outage starts again at 1 s
    [InlineData(4, 10, 1)] // up for longer than the last wait: not flapping
    public void NextProbeDelay_DoublesOnlyWhileTheHostFlaps(double previousSeconds, double upSeconds, double expectedSeconds) =>
        Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), UpstreamHealth.NextProbeDelay(TimeSpan.FromSeconds(previousSeconds), TimeSpan.FromSeconds(upSeconds)));

    public static TheoryData<Exception, bool> Failures => new()
    {
        { new HttpRequestException("x", new UpstreamConnectException(ConnectError.Timeout, "t")), true },
        { new HttpRequestException("x", new UpstreamConnectException(ConnectError.Unreachable, "refused")), true },
        { new HttpRequestException("x", new UpstreamConnectException(ConnectError.ParentProxyRefused, "502")), true },
        { new HttpRequestException("x", new UpstreamConnectException(ConnectError.Denied, "metadata address")), false },
        { new HttpRequestException("x", new UpstreamConnectException(ConnectError.NameNotResolved, "nxdomain")), false },
        { new HttpRequestException(HttpRequestError.ResponseEnded, "reset"), true },
        { new HttpRequestException(HttpRequestError.ConnectionError, "reset"), true },
        { new HttpRequestException(HttpRequestError.SecureConnectionError, "eof", new IOException("eof")), true },
        { new HttpRequestException(HttpRequestError.SecureConnectionError, "untrusted", new AuthenticationException("untrusted")), false },
        { new HttpRequestException(HttpRequestError.InvalidResponse, "garbage"), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void IsOutage_NoConnectionOrBrokenOne_NotAnAnswer(Exception failure, bool outage) =>
        Assert.Equal(outage, UpstreamHealth.IsOutage((HttpRequestException)failure));

    [Fact]
    public void ReportFailure_Repeated_DownOnceWaitersLetGoConnectionsClosed()
    {
        var health = Health();
        var host = health.Track(new Uri("https://registry.test:5000/v2/"), UpstreamReach.Client);
        var waiting = host.UpToken;
        var (ours, theirs) = SocketPair();
        host.AddConnection(ours);

        health.ReportFailure(host, "connect timed out", network: true);
        health.ReportFailure(host, "connect timed out again", network: true);

        Assert.True(host.IsDown);
        Assert.True(waiting.IsCancellationRequested);
        Assert.Equal("connect timed out", host.Reason);
        Assert.Equal(1, _log.Count(206));
        Assert.Same(host, health.FindDown("registry.test:5000"));
        Assert.Equal(0, theirs.Receive(new byte[1])); // our end was shut down
        Assert.Contains("registry.test:5000 is down", health.Unavailable(host).Message, StringComparison.Ordinal);
        Assert.Equal(ConnectError.Down, health.Unavailable(host).Error);
    }

    [Fact]
    public void ReportAnswer_FaultThenAnswer_DownThenUpWithAFreshSignal_ConnectionsKept()
    {
        var health = Health();
        var host = health.Track(new Uri("https://registry.test/v2/"), UpstreamReach.Client);
        var (ours, _) = SocketPair();
        host.AddConnection(ours);

        health.ReportAnswer(host, HttpStatusCode.TooManyRequests);
        Assert.True(host.IsDown);
        Assert.Equal("answered 429", host.Reason);
        Assert.True(ours.Connected); // it answers: its connections are fine

        health.ReportAnswer(host, HttpStatusCode.NotFound);
        Assert.False(host.IsDown);
        Assert.False(host.UpToken.IsCancellationRequested);
        Assert.Null(health.FindDown("registry.test"));
        Assert.Equal(1, _log.Count(206));
        Assert.Equal(1, _log.Count(207));
    }

    [Fact]
    public void Track_RedirectTargetOnce_ProbedUnderTheRedirectRulesFromThenOn()
    {
        var health = Health();
        health.Track(new Uri("https://cdn.test/blob"), UpstreamReach.Client);

        health.Track(new Uri("https://cdn.test/blob"), UpstreamReach.Redirect);
        var later = health.Track(new Uri("https://cdn.test/other"), UpstreamReach.Client);

        Assert.Equal(UpstreamReach.Redirect, later.Reach);
    }

    [Fact]
    public void Track_MoreHostsThanKept_ForgetsOnlyHostsThatAreUp()
    {
        var health = Health();
        var down = health.Track(new Uri("https://down.test/"), UpstreamReach.Client);
        health.ReportFailure(down, "gone", network: false);

        for (var i = 0; i < UpstreamHealth.MaxKnown + 10; i++)
        {
            health.Track(new Uri($"https://cdn{i}.test/"), UpstreamReach.Redirect);
        }

        Assert.Equal(UpstreamHealth.MaxKnown, health.Known.Count());
        Assert.Same(down, health.FindDown("down.test"));
    }

    [Fact]
    public async Task WatchAsync_RequestWaitsOnAHostThatNoLongerConnects_MarkedDownAndTheRequestLetGo()
    {
        var port = FreePort();
        var health = Health(TimeSpan.FromMilliseconds(400), ("gone.test", port));
        var host = health.Track(new Uri($"https://gone.test:{port}/v2/"), UpstreamReach.Client);
        var never = new TaskCompletionSource<HttpResponseMessage>();
        host.UpToken.Register(() => never.TrySetCanceled());

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => health.WatchAsync(host, never.Task).WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.True(host.IsDown);
        Assert.Contains("while a request waited", host.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WatchAsync_SlowAnswerFromAHostThatStillHandshakes_NotMarkedDown()
    {
        using var server = TlsServer.Start();
        // A connect budget a loaded 2-core machine meets (a first TLS handshake JITs SslStream); the answer comes
        // after the first check (budget / 4) and during the second wait, so the host is checked at least once.
        var health = Health(TimeSpan.FromSeconds(2), ("slow.test", server.Port));
        var host = health.Track(new Uri($"https://slow.test:{server.Port}/v2/"), UpstreamReach.Client);
        using var answer = new HttpResponseMessage(HttpStatusCode.OK);
        var slow = Task.Delay(TimeSpan.FromSeconds(3)).ContinueWith(_ => answer, TaskScheduler.Default);

        Assert.Same(answer, await health.WatchAsync(host, slow));

        Assert.False(host.IsDown);
        Assert.True(server.Handshakes >= 1, "the host was checked while the request waited");
    }

    [Theory]
    [InlineData("degraded: cache storage not writable, serving pass-through: read-only file system\n", "cache storage not writable, serving pass-through: read-only file system")]
    [InlineData("degraded: upstream registry.test down for 3 s (refused), answered from the cache; next probe in 1 s\n", null)]
    public async Task ConfirmUpAsync_ParentReadyButDegraded_UpAndDegradedOnlyForItsOwnTrouble(string readyBody, string? degraded)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var settings = UpstreamConnectorTests.TestSettings() with { UpstreamProxies = [new Uri($"http://127.0.0.1:{port}")] };
        var health = new UpstreamHealth(new UpstreamConnector(settings), settings, TimeProvider.System, _log);
        _disposables.Add(health);
        var parent = Assert.Single(health.Known);
        var answered = AnswerReadyzAsync(listener, readyBody);

        Assert.True(await health.ConfirmUpAsync(parent, "test", fresh: true));

        Assert.Equal("GET /readyz HTTP/1.1", await answered);
        Assert.False(parent.IsDown);
        Assert.Equal(degraded, parent.Degraded);
    }

    /// <summary>One HTTP/1.1 answer as MitmCache's /readyz gives it when degraded; returns the request line.</summary>
    private static async Task<string> AnswerReadyzAsync(TcpListener listener, string body)
    {
        using var client = await listener.AcceptTcpClientAsync();
        var stream = client.GetStream();
        var reader = new StreamReader(stream);
        var requestLine = await reader.ReadLineAsync() ?? "";
        while (!string.IsNullOrEmpty(await reader.ReadLineAsync()))
        {
        }

        var bytes = System.Text.Encoding.UTF8.GetBytes(body);
        var head = $"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-MitmCache-Degraded: true\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(bytes);
        return requestLine;
    }

    private UpstreamHealth Health(TimeSpan? connectTimeout = null, params (string Host, int Port)[] connectTo)
    {
        var settings = UpstreamConnectorTests.TestSettings() with
        {
            ConnectTimeout = connectTimeout ?? TimeSpan.FromSeconds(2),
            ConnectTo = [.. connectTo.Select(c => new MitmCache.Configuration.ConnectToRule(c.Host, c.Port, "127.0.0.1", c.Port))],
        };
        var health = new UpstreamHealth(new UpstreamConnector(settings), settings, TimeProvider.System, _log);
        _disposables.Add(health);
        return health;
    }

    private (Socket Ours, Socket Theirs) SocketPair()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var ours = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        ours.Connect(listener.LocalEndPoint!);
        var theirs = listener.Accept();
        theirs.ReceiveTimeout = 5000;
        _disposables.Add(ours);
        _disposables.Add(theirs);
        return (ours, theirs);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Counts log events by id.</summary>
    private sealed class EventCounter : ILogger<UpstreamHealth>
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<int> _ids = new();

        public int Count(int id) => _ids.Count(i => i == id);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _ids.Enqueue(eventId.Id);
    }

    /// <summary>Completes TLS handshakes (with a self-signed certificate nobody trusts) and never answers anything.</summary>
    private sealed class TlsServer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly X509Certificate2 _certificate;
        private int _handshakes;

        private TlsServer()
        {
            using var key = RSA.Create(2048);
            var request = new CertificateRequest("CN=slow.test", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
            _certificate = X509CertificateLoader.LoadPkcs12(created.Export(X509ContentType.Pfx), null);
            _listener.Start();
            _ = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public int Handshakes => Volatile.Read(ref _handshakes);

        public static TlsServer Start() => new();

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync();
                    _ = HandshakeAsync(client);
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Stopped.
            }
        }

        private async Task HandshakeAsync(TcpClient client)
        {
            using (client)
            await using (var tls = new SslStream(client.GetStream()))
            {
                try
                {
                    await tls.AuthenticateAsServerAsync(_certificate);
                }
                catch (Exception ex) when (ex is IOException or AuthenticationException)
                {
                    // The client refused our certificate, as it should.
                }

                Interlocked.Increment(ref _handshakes);
            }
        }

        public void Dispose()
        {
            _listener.Stop();
            _certificate.Dispose();
        }
    }
}
