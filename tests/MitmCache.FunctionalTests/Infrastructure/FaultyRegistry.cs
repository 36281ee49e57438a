using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

public enum UpstreamFault
{
    None,
    Status500,
    Status503,
    Status429,
    /// <summary>The connection is aborted before any response.</summary>
    Reset,
    /// <summary>No response at all until the client gives up.</summary>
    Stall,
    /// <summary>Full Content-Length announced, half the body sent, then the connection is aborted.</summary>
    Truncate,
    /// <summary>A complete, well-formed response whose bytes do not match the digest.</summary>
    WrongBytes,
    /// <summary>Correct bytes, sent slowly (64 KiB every 20 ms).</summary>
    Slow,
}

/// <summary>
/// A minimal registry (<c>faulty.test</c>) that serves what it is given and misbehaves on demand,
/// for the failure cases the real registry cannot produce. It counts every request per path.
/// </summary>
public sealed class FaultyRegistry : IAsyncDisposable
{
    public const string DefaultHost = "faulty.test";

    private readonly ConcurrentDictionary<string, (byte[] Bytes, string MediaType)> _content = new();
    private readonly ConcurrentDictionary<string, string> _tags = new();
    private WebApplication _app = null!;

    public int Port { get; private set; }

    public string Host { get; private init; } = DefaultHost;

    public string Authority => $"{Host}:{Port}";

    public volatile UpstreamFault Fault;

    /// <summary>Status faults (500, 503, 429) answer <c>/v2/</c> too, as a registry down for maintenance does.</summary>
    public volatile bool FaultPing;

    private long _delayTicks;

    /// <summary>Every answer (of <see cref="DelayedMethod"/> only, when set) waits this long before its head: a slow upstream.</summary>
    public TimeSpan Delay
    {
        get => TimeSpan.FromTicks(Interlocked.Read(ref _delayTicks));
        set => Interlocked.Exchange(ref _delayTicks, value.Ticks);
    }

    public volatile string? DelayedMethod;

    public ConcurrentDictionary<string, int> Requests { get; } = new();

    public static async Task<FaultyRegistry> StartAsync(TestPki pki, string host = DefaultHost)
    {
        var registry = new FaultyRegistry { Host = host };
        (registry._app, registry.Port) = await LoopbackKestrel.StartAsync(pki.IssueServerCertificate(host), 0, registry.HandleAsync, CancellationToken.None);
        return registry;
    }

    /// <summary>Settings for a proxy in front of this registry alone: intercepted, its port allowed, dialled on loopback, its CA trusted.</summary>
    public MitmCache.Configuration.ProxySettings ProxySettings(TestPki pki, string dataDirectory) => new()
    {
        Listen = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0),
        DataDirectory = dataDirectory,
        Intercept = [Host],
        AllowedPorts = new HashSet<int> { 443, Port },
        UpstreamCaFile = pki.CaCertPath,
        ConnectTo = [new(Host, Port, "127.0.0.1", Port)],
    };

    /// <summary>Adds a blob (or manifest) and returns its digest.</summary>
    public string Add(byte[] bytes, string mediaType = "application/octet-stream")
    {
        var digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
        _content[digest] = (bytes, mediaType);
        return digest;
    }

    public void Tag(string repository, string tag, string digest) => _tags[$"{repository}:{tag}"] = digest;

    public int CountFor(string pathContains) => Requests.Where(r => r.Key.Contains(pathContains, StringComparison.Ordinal)).Sum(r => r.Value);

    private async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        Requests.AddOrUpdate($"{context.Request.Method} {path}", 1, (_, n) => n + 1);
        if (Delay > TimeSpan.Zero && (DelayedMethod is null || DelayedMethod == context.Request.Method))
        {
            await Task.Delay(Delay, context.RequestAborted);
        }

        if (path == "/v2/")
        {
            context.Response.StatusCode = FaultPing ? Fault switch
            {
                UpstreamFault.Status500 => 500,
                UpstreamFault.Status503 => 503,
                UpstreamFault.Status429 => 429,
                _ => 200,
            } : 200;
            await context.Response.WriteAsync("{}");
            return;
        }

        var parts = path.Split('/');
        if (parts.Length < 5 || parts[1] != "v2")
        {
            context.Response.StatusCode = 404;
            return;
        }

        var kind = parts[^2];
        var reference = parts[^1];
        var repository = string.Join('/', parts[2..^2]);
        if (kind == "uploads")
        {
            // A blob upload: like distribution, read the whole body before answering.
            await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
            context.Response.StatusCode = 202;
            return;
        }

        if (kind == "manifests" && _tags.TryGetValue($"{repository}:{reference}", out var tagged))
        {
            reference = tagged;
        }

        if (!_content.TryGetValue(reference, out var entry))
        {
            context.Response.StatusCode = 404;
            return;
        }

        switch (Fault)
        {
            case UpstreamFault.Status500:
                context.Response.StatusCode = 500;
                return;
            case UpstreamFault.Status503:
                context.Response.StatusCode = 503;
                return;
            case UpstreamFault.Status429:
                context.Response.StatusCode = 429;
                return;
            case UpstreamFault.Reset:
                context.Abort();
                return;
            case UpstreamFault.Stall:
                await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
        }

        context.Response.ContentType = entry.MediaType;
        context.Response.ContentLength = entry.Bytes.Length;
        context.Response.Headers["Docker-Content-Digest"] = reference;
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        switch (Fault)
        {
            case UpstreamFault.Truncate:
                await context.Response.Body.WriteAsync(entry.Bytes.AsMemory(0, entry.Bytes.Length / 2));
                await context.Response.Body.FlushAsync();
                context.Abort();
                return;
            case UpstreamFault.WrongBytes:
                var wrong = (byte[])entry.Bytes.Clone();
                wrong[wrong.Length / 2] ^= 0xFF;
                await context.Response.Body.WriteAsync(wrong);
                return;
            case UpstreamFault.Slow:
                for (var offset = 0; offset < entry.Bytes.Length; offset += 64 * 1024)
                {
                    await context.Response.Body.WriteAsync(entry.Bytes.AsMemory(offset, Math.Min(64 * 1024, entry.Bytes.Length - offset)), context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                    await Task.Delay(20, context.RequestAborted);
                }

                return;
            default:
                await context.Response.Body.WriteAsync(entry.Bytes);
                return;
        }
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
