using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Infrastructure;

/// <summary>
/// A registry that lies, on https://HOST:PORT (Kestrel, the test CA): every answer is a rule the test
/// sets, so it can redirect anywhere, send chunked, endless or oversized bodies, headers that do not
/// match its body, and challenges that name any realm. The first rule whose path prefix matches
/// answers; a request no rule matches gets 404. Every request is recorded.
/// </summary>
public sealed class HostileRegistry : IAsyncDisposable
{
    private readonly ConcurrentQueue<(string Prefix, RequestDelegate Answer)> _rules = new();
    private WebApplication? _app;

    private HostileRegistry(string host) => Host = host;

    public string Host { get; }

    public int Port { get; private set; }

    public string Authority => $"{Host}:{Port}";

    /// <summary>"METHOD /path?query" of every request, in arrival order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    public static async Task<HostileRegistry> StartAsync(TestPki pki, string host)
    {
        var registry = new HostileRegistry(host);
        (registry._app, registry.Port) = await LoopbackKestrel.StartAsync(pki.IssueServerCertificate(host), 0, registry.HandleAsync, CancellationToken.None);
        return registry;
    }

    /// <summary>Answers requests whose path starts with <paramref name="pathPrefix"/> (rules are tried in the order they were added).</summary>
    public HostileRegistry On(string pathPrefix, RequestDelegate answer)
    {
        _rules.Enqueue((pathPrefix, answer));
        return this;
    }

    /// <summary>A redirect (307 by default) to <paramref name="location"/>(request).</summary>
    public static RequestDelegate RedirectTo(Func<HttpRequest, string> location, int status = StatusCodes.Status307TemporaryRedirect) => context =>
    {
        context.Response.StatusCode = status;
        context.Response.Headers.Location = location(context.Request);
        return Task.CompletedTask;
    };

    /// <summary>
    /// <paramref name="body"/> with 200, announced as <paramref name="contentType"/>; chunked (no
    /// Content-Length) when <paramref name="chunked"/>; <paramref name="headers"/> may lie about it.
    /// </summary>
    public static RequestDelegate Body(byte[] body, string contentType, bool chunked = false, IReadOnlyDictionary<string, string>? headers = null) => async context =>
    {
        context.Response.ContentType = contentType;
        if (!chunked)
        {
            context.Response.ContentLength = body.Length;
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            context.Response.Headers[name] = value;
        }

        if (!HttpMethods.IsHead(context.Request.Method))
        {
            await context.Response.Body.WriteAsync(body, context.RequestAborted);
        }
    };

    /// <summary>A 200 body of <paramref name="length"/> bytes (JSON-looking, never valid) without Content-Length, or forever when null.</summary>
    public static RequestDelegate Flood(long? length, string contentType) => async context =>
    {
        context.Response.ContentType = contentType;
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return;
        }

        var chunk = new byte[64 * 1024];
        chunk.AsSpan().Fill((byte)' ');
        chunk[0] = (byte)'{';
        long sent = 0;
        try
        {
            while (length is null || sent < length)
            {
                var size = (int)Math.Min(chunk.Length, (length ?? long.MaxValue) - sent);
                await context.Response.Body.WriteAsync(chunk.AsMemory(0, size), context.RequestAborted);
                sent += size;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The proxy stopped reading and hung up: that is what these bodies are for.
        }
    };

    /// <summary>401 with <paramref name="challenge"/> as WWW-Authenticate, for requests without Authorization; others fall through to <paramref name="authorized"/>.</summary>
    public static RequestDelegate Challenge(string challenge, RequestDelegate? authorized = null) => context =>
    {
        if (context.Request.Headers.Authorization.Count > 0 && authorized is not null)
        {
            return authorized(context);
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = challenge;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync("{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}");
    };

    /// <summary>Stops listening; connections are refused afterwards.</summary>
    public async Task StopAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        Requests.Enqueue($"{context.Request.Method} {path}{context.Request.QueryString}");
        foreach (var (prefix, answer) in _rules)
        {
            if (path.StartsWith(prefix, StringComparison.Ordinal))
            {
                return answer(context);
            }
        }

        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }
}
