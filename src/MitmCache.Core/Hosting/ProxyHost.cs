using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.DependencyInjection;
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
/// <c>ProxyConnectionMiddleware → UseHttps(TLS callback) → HTTP</c>, and one request delegate.
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ProxyHost(WebApplication app) => _app = app;

    /// <summary>The address actually bound (useful with port 0).</summary>
    public Uri Address { get; private set; } = null!;

    /// <summary>The <c>--metrics-listen</c> address actually bound, if any.</summary>
    public Uri? MetricsAddress { get; private set; }

    public IServiceProvider Services => _app.Services;

    /// <exception cref="CertificateAuthorityException">The CA could not be loaded or created.</exception>
    public static async Task<ProxyHost> StartAsync(ProxySettings settings, Serilog.ILogger log, CancellationToken cancellationToken = default)
    {
        var time = TimeProvider.System;
        BlobStore.CreatePrivateDirectory(settings.DataDirectory);
        var authority = CertificateAuthority.LoadOrCreate(settings.CaDirectory, time, out var created);
        log.Information(created ? "Created root CA {Fingerprint} in {Directory}" : "Loaded root CA {Fingerprint} from {Directory}",
            authority.Sha256Fingerprint, settings.CaDirectory);

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
        // SIGTERM: stop accepting, let responses in flight finish for up to 15 s, then cut them.
        services.Configure<HostOptions>(options => options.ShutdownTimeout = TimeSpan.FromSeconds(15));
        services.AddSingleton(settings);
        services.AddSingleton(time);
        services.AddSingleton(authority);
        services.AddSingleton(sp => new LeafCertificateCache(new LeafCertificateFactory(authority, time), time));
        services.AddSingleton(sp => HostPolicy.From(settings, authority, sp.GetRequiredService<ILogger<HostPolicy>>()));
        services.AddSingleton<ProxyAccess>();
        services.AddSingleton(new ConnectionLimiter(settings, time));
        services.AddSingleton<UpstreamConnector>();
        services.AddSingleton(sp => UpstreamHttp.CreateInvoker(sp.GetRequiredService<UpstreamConnector>(), settings));
        services.AddSingleton<HttpForwarder>();
        services.AddSingleton<RegistryUpstream>();
        services.AddSingleton<ProxyMetrics>();
        services.AddSingleton<CacheMetrics>();
        services.AddSingleton<BlobCache>();
        services.AddSingleton<AccessTokens>();
        services.AddSingleton(sp => new AccessGrants(GrantKey(settings), sp.GetRequiredService<BlobCache>().Index, sp.GetRequiredService<AccessTokens>(),
            time, settings.OfflineGrantWindow));
        services.AddSingleton<RegistryAuthorizer>();
        services.AddSingleton<TokenEndpoint>();
        services.AddSingleton<RegistryChallenges>();
        services.AddSingleton<PingEndpoint>();
        services.AddSingleton<BlobEndpoint>();
        services.AddSingleton<ManifestEndpoint>();
        services.AddSingleton<RegistryHandler>();
        services.AddSingleton<MetricsWriter>();
        services.AddSingleton(sp => new CacheAdmin(sp.GetRequiredService<BlobCache>(), sp.GetRequiredService<CacheMetrics>(), settings,
            live: true, sp.GetRequiredService<ILogger<CacheAdmin>>()));
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
            kestrel.Listen(settings.Listen, listen =>
            {
                var middleware = listen.ApplicationServices.GetRequiredService<ProxyConnectionMiddleware>();
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.Use(next => connection => middleware.OnConnectionAsync(connection, next));
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
            });
            if (settings.MetricsListen is { } metricsListen)
            {
                // Plain HTTP without the proxy's connection middleware: no CONNECT, no client allow-list.
                kestrel.Listen(metricsListen, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1;
                    listen.Use(next => connection =>
                    {
                        connection.Items[ProxyEndpoints.MonitoringListener] = true;
                        return next(connection);
                    });
                });
            }
        });

        var app = builder.Build();
        var router = app.Services.GetRequiredService<RequestRouter>();
        app.Run(router.HandleAsync);
        app.Lifetime.ApplicationStopping.Register(() => app.Services.GetRequiredService<BlobCache>().Index.FlushAccess());

        // Open the cache (and repair it) before accepting connections.
        _ = app.Services.GetRequiredService<BlobCache>();
        _ = app.Services.GetRequiredService<TokenEndpoint>();
        await app.StartAsync(cancellationToken);

        var host = new ProxyHost(app);
        // Kestrel lists the bound addresses in the order of the Listen calls: the proxy first.
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToList();
        host.Address = LocalUri(bound[0]);
        host.MetricsAddress = settings.MetricsListen is null ? null : LocalUri(bound[1]);
        log.Information("MitmCache listening on {Address}; intercepting {Intercept}; data in {Data}",
            settings.Listen.Port == 0 ? host.Address.Authority : settings.Listen.ToString(), string.Join(", ", settings.Intercept), settings.DataDirectory);
        if (host.MetricsAddress is { } metrics)
        {
            log.Information("Metrics and health on http://{MetricsAddress} (no proxying there)", metrics.Authority);
        }

        return host;
    }

    private static Uri LocalUri(string bound) =>
        new(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));

    /// <summary>The per-install grant key; in pass-through mode on a read-only data directory, one for this run.</summary>
    private static byte[] GrantKey(ProxySettings settings)
    {
        try
        {
            return AccessGrants.LoadOrCreateKey(settings.CaDirectory);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && settings.OnCacheFailure == CacheFailureMode.Passthrough)
        {
            return System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        }
    }

    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => HostingAbstractionsHostExtensions.WaitForShutdownAsync(_app, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
