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
    private const string TokenHost = "auth.test";
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
    private readonly AccessTokens _tokens;
    private readonly VisibilityProbe _visibility;

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
            settings, NullLogger<RegistryUpstream>.Instance) { Redirects = _invoker };
        var tokens = new AccessTokens(_time);
        _grants = new AccessGrants(RandomNumberGenerator.GetBytes(32), _index.Grants, _index.Visibility, tokens, _time, TimeSpan.FromDays(7));
        var tokenEndpoint = new TokenEndpoint(_upstream, tokens, _grants, _index.Visibility, _time, NullLogger<TokenEndpoint>.Instance);
        var challenges = new RegistryChallenges(_index.Challenges, tokenEndpoint, _time, NullLogger<RegistryChallenges>.Instance);
        var authorizer = new RegistryAuthorizer(_cache, _grants, _upstream, tokens, challenges, settings, _index.Links, _index.Visibility);
        _endpoint = new BlobEndpoint(_cache, _upstream, authorizer, _grants, challenges, metrics, _index.Links, null, []);
        _tokens = tokens;
        _visibility = new VisibilityProbe(_upstream, challenges, _grants, tokens, _index.Visibility, _time, NullLogger<VisibilityProbe>.Instance);
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

        Assert.Equal(RequestResult.Aborted, outcome.Result);
        Assert.Equal(0, _totals.Sum("mitmcache_upstream_errors_total"));
        Assert.Equal(0, _cache.InFlightCount);
    }

    [Fact]
    public async Task HandleAsync_TwentyAnonymousClientsOnOneColdBlob_OneGetAndNoHead()
    {
        var body = RandomNumberGenerator.GetBytes(300_000);
        var digest = Digest.Compute(body);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _handler.Answer = async (request, _) =>
        {
            await release.Task; // the owner's answer waits until every other client has joined
            return Blob(body, digest);
        };

        var contexts = Enumerable.Range(0, 20).Select(_ => Get(digest)).ToList();
        var first = _endpoint.HandleAsync(contexts[0], s_target, new BlobRoute(Repository, digest));
        await _handler.Asked.WaitAsync(s_timeout);
        var (fill, owner) = _cache.JoinOrStart(digest);
        Assert.False(owner);
        var others = contexts.Skip(1).Select(c => _endpoint.HandleAsync(c, s_target, new BlobRoute(Repository, digest))).ToList();
        Assert.True(SpinWait.SpinUntil(() => fill.Joiners == 19, s_timeout));
        release.SetResult();
        var outcomes = await Task.WhenAll([first, .. others]).WaitAsync(s_timeout);

        Assert.Equal(1, _handler.Gets);
        Assert.Equal(0, _handler.Heads);
        Assert.Single(outcomes, o => o.Result == RequestResult.Miss);
        Assert.All(outcomes, o => Assert.Contains(o.Result, new[] { RequestResult.Miss, RequestResult.Coalesced, RequestResult.Hit })); // hit: joined, then found it committed
        Assert.All(contexts, c => Assert.Equal(body, ((MemoryStream)c.Response.Body).ToArray()));
    }

    [Fact]
    public async Task HandleAsync_JoinerWithOtherCredentialsThatUpstreamRefuses_GetsNoByteOfTheFill()
    {
        var body = RandomNumberGenerator.GetBytes(100_000);
        var digest = Digest.Compute(body);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _handler.Answer = async (request, _) =>
        {
            if (request.Headers.Authorization?.Parameter != "b3duZXI=")
            {
                return new HttpResponseMessage(HttpStatusCode.Unauthorized) { Content = new ByteArrayContent([]) };
            }

            await release.Task;
            return Blob(body, digest);
        };
        var ownerContext = Get(digest, "Basic b3duZXI=");
        var strangerContext = Get(digest, "Basic c3RyYW5nZXI=");

        var ownerRead = _endpoint.HandleAsync(ownerContext, s_target, new BlobRoute(Repository, digest));
        await _handler.Asked.WaitAsync(s_timeout);
        var (fill, _) = _cache.JoinOrStart(digest);
        var strangerRead = _endpoint.HandleAsync(strangerContext, s_target, new BlobRoute(Repository, digest));
        Assert.True(SpinWait.SpinUntil(() => fill.Joiners == 1, s_timeout));
        release.SetResult();
        var stranger = await strangerRead.WaitAsync(s_timeout);
        await ownerRead.WaitAsync(s_timeout);

        Assert.Equal(RequestResult.Forwarded, stranger.Result);
        Assert.Equal(StatusCodes.Status401Unauthorized, strangerContext.Response.StatusCode);
        Assert.Empty(((MemoryStream)strangerContext.Response.Body).ToArray());
        Assert.Equal(1, _handler.Heads); // the stranger's probe: the owner's answer proves nothing for other credentials
        Assert.Equal(body, ((MemoryStream)ownerContext.Response.Body).ToArray());
    }

    [Fact]
    public async Task HandleAsync_OwnerRefused_JoinerFetchesOnItsOwnAccount()
    {
        var body = RandomNumberGenerator.GetBytes(50_000);
        var digest = Digest.Compute(body);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _handler.Answer = async (request, _) =>
        {
            if (request.Headers.Authorization?.Parameter == "Z29vZA==")
            {
                return Blob(body, digest);
            }

            await release.Task;
            return new HttpResponseMessage(HttpStatusCode.Unauthorized) { Content = new ByteArrayContent([]) };
        };
        var refusedContext = Get(digest, "Basic YmFk");
        var goodContext = Get(digest, "Basic Z29vZA==");

        var refusedRead = _endpoint.HandleAsync(refusedContext, s_target, new BlobRoute(Repository, digest));
        await _handler.Asked.WaitAsync(s_timeout);
        var (fill, _) = _cache.JoinOrStart(digest);
        var goodRead = _endpoint.HandleAsync(goodContext, s_target, new BlobRoute(Repository, digest));
        Assert.True(SpinWait.SpinUntil(() => fill.Joiners == 1, s_timeout));
        release.SetResult();

        Assert.Equal(RequestResult.Forwarded, (await refusedRead.WaitAsync(s_timeout)).Result);
        Assert.Equal(RequestResult.Miss, (await goodRead.WaitAsync(s_timeout)).Result);
        Assert.Equal(StatusCodes.Status401Unauthorized, refusedContext.Response.StatusCode);
        Assert.Equal(body, ((MemoryStream)goodContext.Response.Body).ToArray());
        Assert.Equal(2, _handler.Gets);
        Assert.Equal(0, _handler.Heads);
    }

    /// <summary>
    /// A repository nothing said was public (its token dance went elsewhere: to another parent of a tier) is asked about
    /// as a client without credentials: a blob HEAD, the anonymous token, the HEAD again; a 200 for that blob makes it
    /// public, and the token is known as anonymous. No client credential goes anywhere.
    /// </summary>
    [Fact]
    public async Task VisibilityProbe_AnonymousTokenReadsTheBlob_RepositoryPublic()
    {
        var body = RandomNumberGenerator.GetBytes(1_000);
        var digest = Digest.Compute(body);
        var seen = new List<string>();
        _handler.Answer = (request, _) =>
        {
            lock (seen)
            {
                seen.Add($"{request.Method} {request.RequestUri!.Host}{request.RequestUri.AbsolutePath} {request.Headers.Authorization}");
            }

            return Task.FromResult(request.RequestUri!.Host == TokenHost ? Token("anon-1")
                : request.Headers.Authorization?.ToString() == "Bearer anon-1" ? Blob(body, digest)
                : Challenge());
        };

        var learned = await _visibility.LearnIfUnknown(s_target, Repository, digest, body.Length)!.WaitAsync(s_timeout);

        Assert.True(learned);
        Assert.True(_index.Visibility.IsPublic(s_target.Authority, Repository));
        Assert.True(_tokens.IsAnonymousToken("Bearer anon-1"));
        Assert.Equal([$"HEAD registry.test/v2/{Repository}/blobs/{digest} ", "GET auth.test/token ", $"HEAD registry.test/v2/{Repository}/blobs/{digest} Bearer anon-1"], seen);
        Assert.Null(_visibility.LearnIfUnknown(s_target, Repository, digest, body.Length)); // known now: not asked again
    }

    [Theory]
    [InlineData(HttpStatusCode.Unauthorized)] // the token host issues a token without access (Docker Hub does), the registry refuses it
    [InlineData(HttpStatusCode.Forbidden)]
    public async Task VisibilityProbe_AnonymousTokenRefused_RepositoryPrivate(HttpStatusCode refusal)
    {
        var digest = Digest.Compute("private layer"u8);
        _handler.Answer = (request, _) => Task.FromResult(request.RequestUri!.Host == TokenHost ? Token("anon-2")
            : request.Headers.Authorization is null ? Challenge() : new HttpResponseMessage(refusal));

        var learned = await _visibility.LearnIfUnknown(s_target, Repository, digest, 13)!.WaitAsync(s_timeout);

        Assert.False(learned);
        Assert.False(_index.Visibility.IsPublic(s_target.Authority, Repository));
        Assert.False(_tokens.IsAnonymousToken("Bearer anon-2"));
    }

    /// <summary>A 200 that is not exactly that blob (another size here) proves nothing: still unknown, and not asked again at once.</summary>
    [Fact]
    public async Task VisibilityProbe_AnswerForAnotherBlob_StaysUnknownAndIsNotAskedAgainAtOnce()
    {
        var body = RandomNumberGenerator.GetBytes(1_000);
        var digest = Digest.Compute(body);
        _handler.Answer = (request, _) => Task.FromResult(request.RequestUri!.Host == TokenHost ? Token("anon-3")
            : request.Headers.Authorization is null ? Challenge() : Blob(body, digest));

        var learned = await _visibility.LearnIfUnknown(s_target, Repository, digest, 999)!.WaitAsync(s_timeout);

        Assert.Null(learned);
        Assert.Null(_index.Visibility.IsPublic(s_target.Authority, Repository));
        Assert.Null(_visibility.LearnIfUnknown(s_target, Repository, digest, 999));
        _time.Advance(VisibilityProbe.RetryAfter);
        Assert.NotNull(_visibility.LearnIfUnknown(s_target, Repository, digest, 999));
    }

    /// <summary>A realm the rules refuse (plain http here) is never asked: the check ends without a token request.</summary>
    [Fact]
    public async Task VisibilityProbe_ChallengeNamesARealmTheRulesRefuse_NoTokenRequest()
    {
        var digest = Digest.Compute("layer"u8);
        _handler.Answer = (request, _) => Task.FromResult(Challenge("http://auth.test/token"));

        var learned = await _visibility.LearnIfUnknown(s_target, Repository, digest, 5)!.WaitAsync(s_timeout);

        Assert.Null(learned);
        Assert.Equal(1, _handler.Heads);
        Assert.Equal(0, _handler.Gets);
    }

    private static HttpResponseMessage Challenge(string realm = "https://auth.test/token")
    {
        var response = new HttpResponseMessage(HttpStatusCode.Unauthorized) { Content = new ByteArrayContent([]) };
        response.Headers.TryAddWithoutValidation("WWW-Authenticate", $"Bearer realm=\"{realm}\",service=\"registry.test\",scope=\"repository:{Repository}:pull\"");
        return response;
    }

    private static HttpResponseMessage Token(string token) =>
        new(HttpStatusCode.OK) { Content = new StringContent($"{{\"token\":\"{token}\",\"expires_in\":300}}") };

    /// <summary>Upstream's 200 for a blob, as the registry sends it.</summary>
    private static HttpResponseMessage Blob(byte[] body, Digest digest)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) };
        response.Content.Headers.ContentType = new("application/octet-stream");
        response.Headers.TryAddWithoutValidation("Docker-Content-Digest", digest.ToString());
        return response;
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

    /// <summary>Upstream: answers with <see cref="Answer"/> (blob and token requests) and counts requests by method.</summary>
    private sealed class Upstream : HttpMessageHandler
    {
        private readonly TaskCompletionSource _asked = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _gets;
        private int _heads;

        public Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> Answer { get; set; } =
            (_, _) => Task.FromResult(new HttpResponseMessage(HttpStatusCode.NotFound));

        /// <summary>Completes at the first request for a blob.</summary>
        public Task Asked => _asked.Task;

        public int Gets => Volatile.Read(ref _gets);

        public int Heads => Volatile.Read(ref _heads);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (!request.RequestUri!.AbsolutePath.Contains("/blobs/", StringComparison.Ordinal) && request.RequestUri.Host != TokenHost)
            {
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)); // a health check of the registry
            }

            Interlocked.Increment(ref request.Method == HttpMethod.Head ? ref _heads : ref _gets);
            _asked.TrySetResult();
            return Answer(request, cancellationToken);
        }
    }
}
