using System.Collections.Concurrent;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace MitmCache.Tests.Common;

/// <summary>
/// A plain HTTPS file server on https://cdn.test:PORT/, standing in for the CDN that
/// distribution's <c>redirect</c> storage middleware sends blob GETs to. Serve the
/// registry's storage root so that <c>/docker/registry/v2/blobs/...</c> resolves.
/// </summary>
public sealed class StaticHttpsServer : IAsyncDisposable
{
    private readonly X509Certificate2 _certificate;
    private readonly string _root;
    private WebApplication? _app;
    private int _requestCount;
    private Hold? _hold;

    private StaticHttpsServer(X509Certificate2 certificate, string root)
    {
        _certificate = certificate;
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root)) + Path.DirectorySeparatorChar;
    }

    public int Port { get; private set; }

    /// <summary>"https://cdn.test:PORT/", the <c>baseurl</c> for the redirect middleware.</summary>
    public string BaseUrl => $"https://{Hosts.Cdn}:{Port}/";

    public int RequestCount => Volatile.Read(ref _requestCount);

    /// <summary>
    /// Holds the next GET of a path containing <paramref name="pathPart"/> after its first <paramref name="bytes"/>
    /// bytes (flushed), until <see cref="Hold.Release"/>: a transfer stopped mid-body on cue. Later GETs go through.
    /// </summary>
    public Hold HoldNext(string pathPart, long bytes) => _hold = new Hold(pathPart, bytes);

    /// <summary>One GET held mid-body: <see cref="Reached"/> when its first bytes are sent, the rest after <see cref="Release"/>.</summary>
    public sealed class Hold(string pathPart, long bytes)
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string PathPart { get; } = pathPart;

        public long Bytes { get; } = bytes;

        public Task Reached => _reached.Task;

        public Task Released => _released.Task;

        public void SetReached() => _reached.TrySetResult();

        public void Release() => _released.TrySetResult();
    }

    /// <summary>URL paths requested, in order.</summary>
    public ConcurrentQueue<string> Paths { get; } = new();

    public static async Task<StaticHttpsServer> StartAsync(TestPki pki, string rootDirectory, CancellationToken ct = default)
    {
        var server = new StaticHttpsServer(pki.IssueServerCertificate(Hosts.Cdn), rootDirectory);
        (server._app, server.Port) = await LoopbackKestrel.StartAsync(server._certificate, 0, server.HandleAsync, ct);
        return server;
    }

    public async Task StopAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _certificate.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref _requestCount);
        var request = context.Request;
        var urlPath = request.Path.Value ?? "/";
        Paths.Enqueue(urlPath);

        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }

        // Kestrel has already unescaped and normalised the path; check containment anyway.
        var fullPath = Path.GetFullPath(Path.Combine(_root, urlPath.TrimStart('/')));
        if (!fullPath.StartsWith(_root, StringComparison.Ordinal) || !File.Exists(fullPath))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var length = new FileInfo(fullPath).Length;
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = length;
        if (HttpMethods.IsGet(request.Method))
        {
            var hold = _hold;
            if (hold is not null && urlPath.Contains(hold.PathPart, StringComparison.Ordinal) && Interlocked.CompareExchange(ref _hold, null, hold) == hold)
            {
                await context.Response.SendFileAsync(fullPath, 0, hold.Bytes, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                hold.SetReached();
                await hold.Released.WaitAsync(context.RequestAborted);
                await context.Response.SendFileAsync(fullPath, hold.Bytes, length - hold.Bytes, context.RequestAborted);
                return;
            }

            await context.Response.SendFileAsync(fullPath, 0, length, context.RequestAborted);
        }
    }
}
