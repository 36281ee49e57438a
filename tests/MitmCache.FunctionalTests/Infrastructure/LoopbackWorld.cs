using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using MitmCache.Configuration;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// The proxy in front of two in-process upstreams, with nothing that leaves loopback: the
/// <see cref="FaultyRegistry"/> (intercepted as <c>faulty.test</c>) for every name on its port, and a
/// plain HTTP server for every other name and port. Cheap to start, for tests that hammer the proxy.
/// </summary>
public sealed class LoopbackWorld : IAsyncDisposable
{
    private WebApplication _plain = null!;

    private LoopbackWorld(TempDir dir, TestPki pki)
    {
        Dir = dir;
        Pki = pki;
    }

    public TempDir Dir { get; }

    public TestPki Pki { get; }

    public FaultyRegistry Registry { get; private set; } = null!;

    /// <summary>Answers every request with 200 <c>plain METHOD RAW-TARGET BODY-LENGTH SHA256-PREFIX</c>.</summary>
    public int PlainPort { get; private set; }

    public ProxyUnderTest Proxy { get; private set; } = null!;

    public static async Task<LoopbackWorld> StartAsync(Func<ProxySettings, ProxySettings>? configure = null, Serilog.Events.LogEventLevel logLevel = Serilog.Events.LogEventLevel.Debug)
    {
        var dir = TempDir.Create("mitmcache-loopback");
        var world = new LoopbackWorld(dir, TestPki.Create(dir.Combine("pki")));
        world.Registry = await FaultyRegistry.StartAsync(world.Pki);
        (world._plain, world.PlainPort) = await LoopbackKestrel.StartAsync(null, 0, async context =>
        {
            var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            var target = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
            var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(body.ToArray()));
            await context.Response.WriteAsync($"plain {context.Request.Method} {target} {body.Length} {hash[..16]}", context.RequestAborted);
        }, CancellationToken.None);

        var settings = new ProxySettings
        {
            Listen = new IPEndPoint(IPAddress.Loopback, 0),
            DataDirectory = dir.Combine("proxy"),
            Intercept = [world.Registry.Host],
            AllowedPorts = new HashSet<int> { 443, world.Registry.Port },
            UpstreamCaFile = world.Pki.CaCertPath,
            ConnectTo =
            [
                new("", world.Registry.Port, "127.0.0.1", world.Registry.Port),
                new("", null, "127.0.0.1", world.PlainPort),
            ],
            UpstreamTimeout = TimeSpan.FromSeconds(5),
        };
        world.Proxy = await ProxyUnderTest.StartAsync(configure?.Invoke(settings) ?? settings, logLevel);
        return world;
    }

    public async ValueTask DisposeAsync()
    {
        await Proxy.DisposeAsync();
        await Registry.DisposeAsync();
        await _plain.DisposeAsync();
        Dir.Dispose();
    }
}
