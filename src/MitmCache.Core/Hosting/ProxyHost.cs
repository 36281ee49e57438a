using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Certificates;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Tunneling;
using MitmCache.Upstream;
using Serilog;

namespace MitmCache.Hosting;

/// <summary>
/// Builds and runs the proxy: one Kestrel listener whose connection pipeline is
/// <c>DrainGate → ProxyConnectionMiddleware → UseHttps(TLS callback) → HTTP</c>, and one request delegate.
/// The listener is the socket systemd passed (socket activation), else one the proxy binds.
/// Shutdown: stop accepting, let requests and fills in flight end within <c>--shutdown-timeout</c>, exit.
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Serilog.ILogger _log;
    private readonly SystemdService? _systemd;
    // The drain is bounded in real time, whatever clock the cache and certificates run on (tests pass a fake one).
    private static readonly TimeProvider s_wallClock = TimeProvider.System;
    private long _stoppingSince;
    private int _disposed;

    private ProxyHost(WebApplication app, Serilog.ILogger log, SystemdService? systemd)
    {
        _app = app;
        _log = log;
        _systemd = systemd;
    }

    /// <summary>The address actually bound (useful with port 0).</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>The <c>--metrics-listen</c> address actually bound, if any.</summary>
    public Uri? MetricsAddress { get; private set; }

    public IServiceProvider Services => _app.Services;

    /// <exception cref="CertificateAuthorityException">The CA could not be loaded or created.</exception>
    /// <param name="time">The clock for certificates, TTLs and retry intervals; tests pass a fake one.</param>
    public static Task<ProxyHost> StartAsync(ProxySettings settings, Serilog.ILogger log, TimeProvider? time = null, CancellationToken cancellationToken = default) =>
        StartAsync(settings, log, sockets: null, time, cancellationToken);

    /// <param name="sockets">The sockets systemd passed, served instead of binding <see cref="ProxySettings.Listen"/> (and <see cref="ProxySettings.MetricsListen"/> when one is named <c>metrics</c>).</param>
    /// <param name="time">The clock for certificates, TTLs and retry intervals; tests pass a fake one.</param>
    /// <exception cref="CertificateAuthorityException">The CA could not be loaded or created.</exception>
    internal static async Task<ProxyHost> StartAsync(ProxySettings settings, Serilog.ILogger log, SystemdSockets? sockets, TimeProvider? time = null,
        CancellationToken cancellationToken = default)
    {
        time ??= TimeProvider.System;
        BlobStore.CreatePrivateDirectory(settings.DataDirectory);
        var authority = CertificateAuthority.LoadOrCreate(settings.Layout.Ca.Directory, time, out var created);
        log.Information(created ? "Created root CA {Fingerprint} in {Directory}" : "Loaded root CA {Fingerprint} from {Directory}",
            authority.Sha256Fingerprint, settings.Layout.Ca.Directory);

        // No reload-on-change for appsettings: it puts a recursive inotify watch on the content root,
        // the data directory, so every 64 KiB written by a blob fill woke the watcher thread (3% of
        // the CPU of a cold 1 GiB miss in perf). Nothing here is configured from appsettings files.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ContentRootPath = settings.DataDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSerilog(log);
        builder.Logging.SetMinimumLevel(LogLevel.Trace);

        var services = builder.Services;
        // SIGTERM: stop accepting, let responses in flight finish for up to --shutdown-timeout, then cut them.
        services.Configure<HostOptions>(options => options.ShutdownTimeout = settings.ShutdownTimeout);
        services.AddSingleton(settings);
        services.AddSingleton(time);
        services.AddSingleton(authority);
        services.AddSingleton(sp => new LeafCertificateCache(new LeafCertificateFactory(authority, time), time));
        services.AddSingleton(sp => HostPolicy.From(settings, authority, sp.GetRequiredService<ILogger<HostPolicy>>()));
        services.AddSingleton<ProxyAccess>();
        services.AddSingleton(new ConnectionLimiter(settings, time));
        services.AddSingleton<ParentTier>();
        services.AddSingleton<UpstreamConnector>();
        services.AddSingleton(sp => new UpstreamHealth(sp.GetRequiredService<UpstreamConnector>(), settings, s_wallClock, sp.GetRequiredService<ILogger<UpstreamHealth>>()));
        services.AddSingleton(sp => UpstreamHttp.CreateInvoker(sp.GetRequiredService<UpstreamConnector>(), settings, sp.GetRequiredService<UpstreamHealth>()));
        services.AddSingleton<HttpForwarder>();
        services.AddSingleton<RegistryUpstream>();
        services.AddMetrics();
        services.AddSingleton<ProxyMeter>();
        services.AddSingleton(sp => sp.GetRequiredService<ProxyMeter>().Meter);
        services.AddSingleton<ProxyMetrics>();
        if (settings.BlobStore is { } blobStore)
        {
            AddBlobStore(services, blobStore, settings, time);
        }

        services.AddSingleton<CacheMetrics>();
        services.AddSingleton<ProxyGauges>();
        services.AddSingleton<ParentMetrics>();
        // The index and one store per collection: the cache's here, the registry's authorization state below.
        services.AddSingleton(sp => IndexDatabase.Open(settings, time, sp.GetRequiredService<ILogger<IndexDatabase>>()));
        services.AddSingleton<BlobRecords>();
        services.AddSingleton<LinkRecords>();
        services.AddSingleton<TagRecords>();
        services.AddSingleton<GrantRecords>();
        services.AddSingleton<RepositoryVisibility>();
        services.AddSingleton<ChallengeRecords>();
        services.AddSingleton<IndexMaintenance>();
        services.AddSingleton<BlobCache>();
        services.AddSingleton<AccessTokens>();
        services.AddSingleton(sp => new AccessGrants(GrantKey(settings), sp.GetRequiredService<GrantRecords>(), sp.GetRequiredService<RepositoryVisibility>(),
            sp.GetRequiredService<AccessTokens>(), time, settings.OfflineGrantWindow));
        services.AddSingleton<RegistryAuthorizer>();
        services.AddSingleton<TokenEndpoint>();
        services.AddSingleton<RegistryChallenges>();
        services.AddSingleton<PingEndpoint>();
        services.AddSingleton<BlobEndpoint>();
        services.AddSingleton<VisibilityProbe>();
        services.AddSingleton<ManifestEndpoint>();
        services.AddSingleton<RegistryHandler>();
        services.AddSingleton(sp => new CacheAdmin(sp.GetRequiredService<BlobCache>(), sp.GetRequiredService<BlobRecords>(), sp.GetRequiredService<LinkRecords>(),
            sp.GetRequiredService<TagRecords>(), sp.GetRequiredService<CacheMetrics>(), settings, live: true, sp.GetRequiredService<ILogger<CacheAdmin>>()));
        services.AddSingleton<AdminEndpoints>();
        services.AddSingleton<ProxyEndpoints>();
        services.AddSingleton<RequestRouter>();
        services.AddSingleton<ProxyConnectionMiddleware>();

        // Each connection's pipe stages (socket, TLS, HTTP, handler) continue on the thread that completed
        // the socket operation instead of handing off to the thread pool at every stage. The runtime still
        // completes socket operations on thread-pool threads (DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS
        // is not set), so a handler that blocks (an index write, a manifest's fsync) holds a pool thread,
        // never the epoll thread. Warm HTTP/1.1 hits: 0.73-0.92x nginx without, 0.98-1.05x with (run.sh --only 1).
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = null; // pushes of large layers pass through
            kestrel.Limits.RequestHeadersTimeout = settings.HeaderTimeout; // slowloris inside and outside tunnels
            kestrel.Limits.Http2.InitialConnectionWindowSize = 4 << 20;
            kestrel.Limits.Http2.InitialStreamWindowSize = 2 << 20;
            void ConfigureProxy(ListenOptions listen)
            {
                var middleware = listen.ApplicationServices.GetRequiredService<ProxyConnectionMiddleware>();
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.Use(next => connection =>
                {
                    DrainGate.Attach(connection);
                    return middleware.OnConnectionAsync(connection, next);
                });
                listen.UseHttps(new TlsHandshakeCallbackOptions
                {
                    OnConnection = middleware.SelectCertificateAsync,
                    HandshakeTimeout = settings.HeaderTimeout,
                });
                listen.Use(next =>
                {
                    middleware.HttpHandler = next;
                    return next;
                });
            }

            // Plain HTTP without the proxy's connection middleware: no CONNECT, no client allow-list.
            static void ConfigureMonitoring(ListenOptions listen)
            {
                listen.Protocols = HttpProtocols.Http1;
                listen.Use(next => connection =>
                {
                    DrainGate.Attach(connection);
                    connection.Items[ProxyEndpoints.MonitoringListener] = true;
                    return next(connection);
                });
            }

            if (sockets is not null)
            {
                kestrel.ListenHandle((ulong)sockets.Proxy.Descriptor, ConfigureProxy);
            }
            else
            {
                kestrel.Listen(settings.Listen, ConfigureProxy);
            }

            if (sockets?.Metrics is { } metricsSocket)
            {
                kestrel.ListenHandle((ulong)metricsSocket.Descriptor, ConfigureMonitoring);
            }
            else if (settings.MetricsListen is { } metricsListen)
            {
                kestrel.Listen(metricsListen, ConfigureMonitoring);
            }
        });

        var app = builder.Build();
        var router = app.Services.GetRequiredService<RequestRouter>();
        app.Use(next => context =>
        {
            context.Features.Get<DrainGate>()?.RequestStarted();
            return next(context);
        });
        app.Run(router.HandleAsync);
        var systemd = SystemdService.FromEnvironment(Environment.GetEnvironmentVariables(), new SystemdNotifier());
        var host = new ProxyHost(app, log, systemd);
        app.Lifetime.ApplicationStopping.Register(host.OnStopping);

        // Open the cache (and repair it) before accepting connections; hand the remembered token realms to the
        // token endpoint; start the index's maintenance timer.
        _ = app.Services.GetRequiredService<BlobCache>();
        _ = app.Services.GetService<ObjectStore.BucketWrites>(); // with --blob-store: uploads what the cache commits from the first fill on
        _ = app.Services.GetRequiredService<ProxyGauges>();
        _ = app.Services.GetRequiredService<ParentMetrics>();
        _ = app.Services.GetRequiredService<RegistryChallenges>();
        _ = app.Services.GetRequiredService<IndexMaintenance>();
        await app.StartAsync(cancellationToken);

        // Kestrel lists the bound addresses in the order of the Listen calls: the proxy first.
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToList();
        host.Address = LocalUri(bound[0]);
        host.MetricsAddress = sockets?.Metrics is null && settings.MetricsListen is null ? null : LocalUri(bound[1]);
        var listening = sockets is not null ? $"{sockets.Proxy.EndPoint} (socket from systemd)"
            : settings.Listen.Port == 0 ? host.Address.Authority : settings.Listen.ToString();
        log.Information("MitmCache listening on {Address}; intercepting {Intercept}; data in {Data}",
            listening, string.Join(", ", settings.Intercept), settings.DataDirectory);
        if (host.MetricsAddress is { } metrics)
        {
            log.Information("Metrics and health on http://{MetricsAddress} (no proxying there)", metrics.Authority);
        }

        if (systemd is not null)
        {
            systemd.Ready($"Serving on {listening}");
            var proxyEndPoint = sockets?.Proxy.EndPoint ?? new IPEndPoint(IPAddress.Parse(host.Address.Host.Trim('[', ']')), host.Address.Port);
            systemd.StartWatchdog(new ListenerSelfCheck(proxyEndPoint), time, app.Services.GetRequiredService<ILogger<ProxyHost>>());
        }

        return host;
    }

    /// <summary>
    /// The S3 blob tier (<c>--blob-store</c>): the tier, its metrics, the persisted upload queue and the uploader, a hosted
    /// service that stops before the index closes. The keys were checked with the options; read again here, never logged.
    /// </summary>
    private static void AddBlobStore(IServiceCollection services, ObjectStore.BlobStoreSettings blobStore, ProxySettings settings, TimeProvider time)
    {
        var errors = new List<string>();
        var credentials = ObjectStore.S3Credentials.Resolve(settings.CredentialVariables, errors)
            ?? throw new InvalidOperationException($"{ObjectStore.BlobStoreSettings.BlobStoreOption}: {string.Join("; ", errors)}");
        services.AddSingleton(sp => new ObjectStore.BlobStoreMetrics(sp.GetRequiredService<ProxyMeter>().Meter));
        services.AddSingleton(sp => new ObjectStore.S3BlobTier(blobStore, credentials, sp.GetRequiredService<ObjectStore.BlobStoreMetrics>(), time,
            sp.GetRequiredService<ILogger<ObjectStore.S3BlobTier>>()));
        services.AddSingleton(sp => new ObjectStore.UploadQueue(sp.GetRequiredService<IndexDatabase>(), blobStore.UploadQueueCapacity));
        services.AddSingleton(sp => new ObjectStore.BlobUploader(sp.GetRequiredService<ObjectStore.S3BlobTier>(), sp.GetRequiredService<ObjectStore.UploadQueue>(),
            new BlobStore(settings.Layout), sp.GetRequiredService<ObjectStore.BlobStoreMetrics>(), time, sp.GetRequiredService<ILogger<ObjectStore.BlobUploader>>()));
        services.AddHostedService(sp => sp.GetRequiredService<ObjectStore.BlobUploader>());
        services.AddSingleton<ObjectStore.BucketWrites>();
        services.AddSingleton<ObjectStore.BucketReads>();
        services.AddSingleton<ObjectStore.IBucketBlobOrigin, ObjectStore.BucketBlobOrigin>();
        services.AddSingleton<IBlobOriginTier, ObjectStore.BucketOriginTier>();
    }

    private void OnStopping()
    {
        Interlocked.Exchange(ref _stoppingSince, s_wallClock.GetTimestamp());
        var settings = _app.Services.GetRequiredService<ProxySettings>();
        _log.Information("Shutting down: accepting no new connections; requests and cache fills in flight have {Timeout} to end",
            settings.ShutdownTimeout);
        _systemd?.Stopping($"Draining, up to {settings.ShutdownTimeout.TotalSeconds:0.#} s");
        try
        {
            _app.Services.GetRequiredService<BlobRecords>().FlushAccess();
        }
        catch (Exception ex) when (ex is LiteDB.LiteException or IOException or ObjectDisposedException)
        {
            _log.Warning("Could not record recent cache hits on shutdown: {Message}", ex.Message);
        }
    }

    private static Uri LocalUri(string bound) =>
        new(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));

    /// <summary>The per-install grant key; in pass-through mode on a read-only data directory, one for this run.</summary>
    private static byte[] GrantKey(ProxySettings settings)
    {
        try
        {
            return AccessGrants.LoadOrCreateKey(settings.Layout.Ca.Directory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && settings.OnCacheFailure == CacheFailureMode.Passthrough)
        {
            return System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        }
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => HostingAbstractionsHostExtensions.WaitForShutdownAsync(_app, cancellationToken);

    /// <summary>
    /// Stops: Kestrel closes the listener (systemd's copy of the socket stays open, and its backlog
    /// waits for the next instance), drains connections (<see cref="DrainGate"/>), then the fills still
    /// running get what is left of <c>--shutdown-timeout</c> before <see cref="BlobCache.Dispose"/> cancels them.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _app.StopAsync();
        var timeout = _app.Services.GetRequiredService<ProxySettings>().ShutdownTimeout;
        var since = Interlocked.Read(ref _stoppingSince);
        var left = timeout - (since == 0 ? TimeSpan.Zero : s_wallClock.GetElapsedTime(since));
        var cache = _app.Services.GetRequiredService<BlobCache>();
        if (cache.InFlightCount > 0 && left > TimeSpan.Zero)
        {
            var fills = cache.FillsEnded();
            if (await Task.WhenAny(fills, Task.Delay(left, s_wallClock)) != fills)
            {
                _log.Warning("{Count} cache fills still running after --shutdown-timeout {Timeout}: discarded", cache.InFlightCount, timeout);
            }
        }

        if (_systemd is not null)
        {
            await _systemd.DisposeAsync();
        }

        await _app.DisposeAsync();
        if (since != 0)
        {
            _log.Information("Stopped after {Elapsed:0.0} s", s_wallClock.GetElapsedTime(since).TotalSeconds);
        }
    }
}
