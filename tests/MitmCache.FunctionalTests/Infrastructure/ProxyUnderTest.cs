using MitmCache.Configuration;
using MitmCache.Hosting;
using Serilog;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>The real proxy host, in process, on 127.0.0.1:0 with a temp data directory.</summary>
public sealed class ProxyUnderTest : IAsyncDisposable
{
    private readonly Serilog.Core.Logger _logger;
    private readonly TimeProvider? _time;
    private ProxyHost? _host;

    private ProxyUnderTest(ProxySettings settings, Serilog.Core.Logger logger, CollectingSink sink, TimeProvider? time)
    {
        Settings = settings;
        _logger = logger;
        _time = time;
        Log = sink;
    }

    public ProxySettings Settings { get; }

    public CollectingSink Log { get; }

    /// <summary><c>http://127.0.0.1:PORT</c>, for HTTPS_PROXY.</summary>
    public string Url => $"http://127.0.0.1:{Port}";

    public int Port { get; private set; }

    /// <summary>The <c>--metrics-listen</c> address, when the settings ask for one.</summary>
    public Uri? MetricsUrl => _host?.MetricsAddress;

    /// <summary>The proxy's root CA as PEM, written to a file clients can trust.</summary>
    public string CaBundlePath => Path.Combine(Settings.DataDirectory, "ca", "root.crt");

    internal IServiceProvider Services => _host!.Services;

    /// <param name="minimumLevel">Debug by default; load tests pass Warning to keep the collected log small.</param>
    /// <param name="time">The proxy's clock (a <c>FakeTimeProvider</c> started at the real time, so that
    /// leaves stay valid for real clients); the system's by default.</param>
    public static async Task<ProxyUnderTest> StartAsync(ProxySettings settings, Serilog.Events.LogEventLevel minimumLevel = Serilog.Events.LogEventLevel.Debug,
        TimeProvider? time = null)
    {
        var sink = new CollectingSink();
        var logger = new LoggerConfiguration().MinimumLevel.Is(minimumLevel)
            .MinimumLevel.Override("Microsoft", Serilog.Events.LogEventLevel.Warning)
            .Enrich.FromLogContext()
            .WriteTo.Sink(sink)
            .CreateLogger();
        var proxy = new ProxyUnderTest(settings, logger, sink, time);
        await proxy.StartHostAsync();
        return proxy;
    }

    /// <summary>Stops and starts the host on the same data directory (and a new port).</summary>
    public async Task RestartAsync()
    {
        await _host!.DisposeAsync();
        await StartHostAsync();
    }

    /// <summary>Stops the host (the index is closed, its lock released) until <see cref="StartAgainAsync"/>.</summary>
    public async Task StopAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
            _host = null;
        }
    }

    /// <summary>Starts a stopped host on the same data directory (and a new port).</summary>
    public Task StartAgainAsync() => _host is null ? StartHostAsync() : Task.CompletedTask;

    public T Get<T>() where T : notnull => (T)_host!.Services.GetService(typeof(T))!;

    /// <summary><c>GET /metrics</c>, parsed.</summary>
    public async Task<PrometheusText> ScrapeMetricsAsync()
    {
        using var http = new HttpClient();
        return PrometheusText.Parse(await http.GetStringAsync($"{Url}/metrics"));
    }

    private async Task StartHostAsync()
    {
        _host = await ProxyHost.StartAsync(Settings with { Listen = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, Port) }, _logger, _time);
        Port = _host.Address.Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        await _logger.DisposeAsync();
    }
}
