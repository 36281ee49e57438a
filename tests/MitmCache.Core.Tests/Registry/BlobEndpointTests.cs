using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using MitmCache.Caching;
using MitmCache.Core.Tests.Caching;
using MitmCache.Core.Tests.Certificates;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Core.Tests.Diagnostics;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Registry;

/// <summary>
/// The blob endpoint over a real cache, index and authorizer, with upstream played by a handler that answers
/// as the test says and counts what it was asked.
/// </summary>
public sealed class BlobEndpointTests : IDisposable
{
    private const string Repository = "team/app";
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);
    private static readonly InterceptTarget s_target = new("registry.test", 443);

    private readonly TempDirectory _directory = new();
    private readonly FakeTimeProvider _time = new();
    private readonly TestIndex _index;
    private readonly Meter _meter = new(ProxyMeter.Name);
    private readonly MeterTotals _totals;
    private readonly BlobCache _cache;
    private readonly Upstream _handler = new();
    private readonly HttpMessageInvoker _invoker;
    private readonly RegistryUpstream _upstream;
    private readonly AccessGrants _grants;
    private readonly BlobEndpoint _endpoint;

    public BlobEndpointTests()
    {
        var settings = TestSettings.Create(_directory.Path, 1L << 30);
        _index = new TestIndex(_directory.Combine("index.db"), _time);
        _totals = new MeterTotals(_meter);
        var metrics = new CacheMetrics(_meter);
        _cache = new BlobCache(settings, _time, metrics, NullLogger<BlobCache>.Instance, _index.Database, _index.Blobs);
        _invoker = new HttpMessageInvoker(_handler);
        var connector = new UpstreamConnector(settings);
        _upstream = new RegistryUpstream(_invoker, connector, new UpstreamHealth(connector, settings, TimeProvider.System, NullLogger<UpstreamHealth>.Instance),
            settings, NullLogger<RegistryUpstream>.Instance);
        var tokens = new AccessTokens(_time);
        _grants = new AccessGrants(RandomNumberGenerator.GetBytes(32), _index.Grants, _index.Visibility, tokens, _time, TimeSpan.FromDays(7));
        var tokenEndpoint = new TokenEndpoint(_upstream, tokens, _grants, _index.Visibility, _time, NullLogger<TokenEndpoint>.Instance);
        var challenges = new RegistryChallenges(_index.Challenges, tokenEndpoint, _time, NullLogger<RegistryChallenges>.Instance);
        var authorizer = new RegistryAuthorizer(_cache, _grants, _upstream, tokens, challenges, settings, _index.Links, _index.Visibility);
        _endpoint = new BlobEndpoint(_cache, _upstream, authorizer, _grants, challenges, metrics, _index.Links);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _upstream.Dispose();
        _invoker.Dispose();
        _index.Dispose();
        _totals.Dispose();
        _meter.Dispose();
        _directory.Dispose();
    }

    [Fact]
    public async Task HandleAsync_ClientLeavesWhileUpstreamThinks_AbortedAndNotAnUpstreamError()
    {
        var digest = Digest.Compute("a layer"u8);
        _handler.Answer = async (_, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken); // no answer until the request is given up
            throw new InvalidOperationException("unreachable");
        };
        using var leaving = new CancellationTokenSource();
        var context = Get(digest, cancellation: leaving.Token);

        var handled = _endpoint.HandleAsync(context, s_target, new BlobRoute(Repository, digest));
        await _handler.Asked.WaitAsync(s_timeout);
        leaving.Cancel();
        var outcome = await handled.WaitAsync(s_timeout);

        Assert.Equal("aborted", outcome.Result);
        Assert.Equal(0, _totals.Sum("mitmcache_upstream_errors_total"));
        Assert.Equal(0, _cache.InFlightCount);
    }

    private static DefaultHttpContext Get(Digest digest, string? authorization = null, CancellationToken cancellation = default)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Get;
        context.Request.Path = $"/v2/{Repository}/blobs/{digest}";
        if (authorization is not null)
        {
            context.Request.Headers.Authorization = authorization;
        }

        context.Response.Body = new MemoryStream();
        context.RequestAborted = cancellation;
        return context;
    }

    /// <summary>Upstream: answers with <see cref="Answer"/> and counts requests by method.</summary>
    private sealed class Upstream : HttpMessageHandler
    {
        private readonly TaskCompletionSource _asked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _gets;
        private int _heads;

        public Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> Answer { get; set; } =
            (_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));

        /// <summary>Completes at the first request.</summary>
        public Task Asked => _asked.Task;

        public int Gets => Volatile.Read(ref _gets);

        public int Heads => Volatile.Read(ref _heads);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref request.Method == HttpMethod.Head ? ref _heads : ref _gets);
            _asked.TrySetResult();
            return Answer(request, cancellationToken);
        }
    }
}
