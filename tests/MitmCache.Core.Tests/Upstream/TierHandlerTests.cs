using System.Net;
using System.Net.Http.Headers;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

/// <summary>
/// The tier's handler over stand-in routes (each parent's pool is a handler here): a blob body that breaks or stalls
/// goes on from the next route with a Range from the byte reached, and the caller reads one whole body.
/// </summary>
public sealed class TierHandlerTests
{
    private const string Digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    private static readonly Uri s_blob = new($"https://registry.test/v2/library/app/blobs/{Digest}");
    private static readonly byte[] s_bytes = [.. Enumerable.Range(0, 100_000).Select(i => (byte)(i * 7))];

    [Fact]
    public async Task BlobBodyBreaksMidway_RestComesByRangeFromTheNextParent_OneWholeBody()
    {
        var cluster = new Cluster();
        cluster.Route(0).Answer = _ => Whole(s_bytes, breakAfter: 40_000);
        cluster.Route(1).Answer = request => Partial(request, s_bytes);

        var body = await cluster.GetBlobAsync();

        Assert.Equal(s_bytes, body);
        var resumed = Assert.Single(cluster.Route(1).Requests);
        Assert.Equal("bytes=40000-", resumed.Range);
        Assert.Equal($"\"{Digest}\"", resumed.IfRange);
        Assert.Contains("1.1 child (MitmCache)", resumed.Via, StringComparison.Ordinal);
        Assert.Empty(cluster.Route(2).Requests);
        Assert.Equal((1, 1, 40_000), cluster.Counts(0));
        Assert.Equal((1, 0, 60_000), cluster.Counts(1));
    }

    [Fact]
    public async Task NextParentIgnoresTheRange_Answers200_ThePrefixIsSkipped()
    {
        var cluster = new Cluster();
        cluster.Route(0).Answer = _ => Whole(s_bytes, breakAfter: 70_001);
        cluster.Route(1).Answer = _ => Whole(s_bytes);

        Assert.Equal(s_bytes, await cluster.GetBlobAsync());
    }

    [Fact]
    public async Task NextParentAnswersAnotherRange_TheOneAfterItIsAsked()
    {
        var cluster = new Cluster();
        cluster.Route(0).Answer = _ => Whole(s_bytes, breakAfter: 10_000);
        cluster.Route(1).Answer = _ => Partial(new RangeHeaderValue(0, null), s_bytes); // from 0, not from the byte reached
        cluster.Route(2).Answer = request => Partial(request, s_bytes);

        Assert.Equal(s_bytes, await cluster.GetBlobAsync());
        Assert.Single(cluster.Route(2).Requests);
        Assert.Equal(1, cluster.Counts(1).Failures);
    }

    [Fact]
    public async Task BodyStallsPastTheUpstreamTimeout_ResumedFromTheNextParent()
    {
        var cluster = new Cluster(upstreamTimeout: TimeSpan.FromMilliseconds(300));
        cluster.Route(0).Answer = _ => Whole(s_bytes, stallAfter: 5_000);
        cluster.Route(1).Answer = request => Partial(request, s_bytes);

        Assert.Equal(s_bytes, await cluster.GetBlobAsync());
        Assert.Equal("bytes=5000-", Assert.Single(cluster.Route(1).Requests).Range);
    }

    [Fact]
    public async Task EveryRouteFailsTheRest_TheReadFailsNamingThem()
    {
        var cluster = new Cluster(directFallback: false);
        cluster.Route(0).Answer = _ => Whole(s_bytes, breakAfter: 1_000);
        cluster.Route(1).Answer = _ => new HttpResponseMessage(HttpStatusCode.ServiceUnavailable);
        cluster.Route(2).Answer = _ => new HttpResponseMessage(HttpStatusCode.NotFound);

        var failure = await Assert.ThrowsAsync<IOException>(cluster.GetBlobAsync);

        Assert.Contains("after 1000 bytes", failure.Message, StringComparison.Ordinal);
        Assert.Contains("answered 503", failure.Message, StringComparison.Ordinal);
        Assert.Contains("answered 404", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ManifestBodyBreaks_NotResumed_TheBreakReachesTheCaller()
    {
        var cluster = new Cluster();
        foreach (var i in new[] { 0, 1, 2 })
        {
            cluster.Route(i).Answer = _ => Whole(s_bytes, breakAfter: 1_000);
        }

        using var invoker = new HttpMessageInvoker(cluster.Handler);
        using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, "https://registry.test/v2/library/app/manifests/v1"), CancellationToken.None);
        await using var body = await response.Content.ReadAsStreamAsync();
        var failure = await Assert.ThrowsAsync<IOException>(() => body.CopyToAsync(Stream.Null));

        Assert.Equal("connection reset by peer", failure.Message);

        Assert.Equal(1, cluster.Route(0).Requests.Count + cluster.Route(1).Requests.Count + cluster.Route(2).Requests.Count);
    }

    /// <summary>
    /// A token the child got for a credential through the repository's owner, on a blob bound for another parent: that
    /// parent is sent the same token request (credential included, after the registry's ping) and the blob goes with the
    /// token it gave, so it sees the credential itself. Once per parent and token.
    /// </summary>
    [Fact]
    public async Task TokenFromTheRepositorysOwner_OnABlobForAnotherParent_ThatParentGivesItsOwnForTheSameRequest()
    {
        var cluster = new Cluster();
        var (repository, issuer, owner) = RepositoryOwnedElsewhere();
        cluster.Parent(issuer).Answer = seen => seen.Path.StartsWith("/token", StringComparison.Ordinal) ? Token("from-issuer") : new HttpResponseMessage(HttpStatusCode.OK);
        cluster.Parent(owner).Answer = seen => seen.Path.StartsWith("/token", StringComparison.Ordinal) ? Token("from-owner")
            : seen.Path.Contains("/blobs/", StringComparison.Ordinal) ? Whole(s_bytes) : new HttpResponseMessage(HttpStatusCode.Unauthorized);
        using var invoker = new HttpMessageInvoker(cluster.Handler, disposeHandler: false);

        var token = await TokenAsync(invoker, repository, "Basic YWxpY2U6cHc=");
        Assert.Equal(HttpStatusCode.OK, await BlobWithAsync(invoker, token));
        Assert.Equal(HttpStatusCode.OK, await BlobWithAsync(invoker, token));

        Assert.Equal("from-issuer", token);
        var asked = cluster.Parent(owner).Requests;
        Assert.Equal(["/v2/", $"/token?scope=repository:{repository}:pull"], asked.Take(2).Select(r => r.Path));
        Assert.Equal("Basic YWxpY2U6cHc=", asked[1].Authorization);
        Assert.All(asked.Skip(2), r => Assert.Equal("Bearer from-owner", r.Authorization));
        Assert.Equal(4, asked.Count); // the ping and the token request once, then two blobs
    }

    /// <summary>A token request without any credential is not kept: its token goes on unchanged (it proves only what is public).</summary>
    [Fact]
    public async Task AnonymousToken_OnABlobForAnotherParent_GoesUnchanged()
    {
        var cluster = new Cluster();
        var (repository, issuer, owner) = RepositoryOwnedElsewhere();
        cluster.Parent(issuer).Answer = _ => Token("anonymous");
        cluster.Parent(owner).Answer = _ => Whole(s_bytes);
        using var invoker = new HttpMessageInvoker(cluster.Handler, disposeHandler: false);

        var token = await TokenAsync(invoker, repository, authorization: null);
        await BlobWithAsync(invoker, token);

        Assert.Equal("Bearer anonymous", Assert.Single(cluster.Parent(owner).Requests).Authorization);
    }

    /// <summary>A parent that gives no token for the request (offline, no grant for the credential) gets the token as it came, and is not asked again at once.</summary>
    [Fact]
    public async Task OtherParentRefusesTheTokenRequest_BlobGoesWithTheTokenAsItCame_NotAskedAgainAtOnce()
    {
        var cluster = new Cluster();
        var (repository, issuer, owner) = RepositoryOwnedElsewhere();
        cluster.Parent(issuer).Answer = _ => Token("from-issuer");
        cluster.Parent(owner).Answer = seen => seen.Path.StartsWith("/token", StringComparison.Ordinal) ? new HttpResponseMessage(HttpStatusCode.Unauthorized)
            : seen.Path == "/v2/" ? new HttpResponseMessage(HttpStatusCode.Unauthorized) : Whole(s_bytes);
        using var invoker = new HttpMessageInvoker(cluster.Handler, disposeHandler: false);

        var token = await TokenAsync(invoker, repository, "Basic Ym9iOnB3");
        await BlobWithAsync(invoker, token);
        await BlobWithAsync(invoker, token);

        var blobs = cluster.Parent(owner).Requests.Where(r => r.Path.Contains("/blobs/", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, blobs.Count);
        Assert.All(blobs, r => Assert.Equal("Bearer from-issuer", r.Authorization));
        Assert.Single(cluster.Parent(owner).Requests, r => r.Path.StartsWith("/token", StringComparison.Ordinal));
    }

    /// <summary>A repository whose owner (where its token request goes) is not the test blob's owner.</summary>
    private static (string Repository, int Issuer, int BlobOwner) RepositoryOwnedElsewhere()
    {
        var blobOwner = Rendezvous.Rank(Cluster.Members, "blob " + Digest)[0];
        var repository = Enumerable.Range(0, 100).Select(i => $"team/app{i}").First(r => Rendezvous.Rank(Cluster.Members, "repo " + r)[0] != blobOwner);
        return (repository, Rendezvous.Rank(Cluster.Members, "repo " + repository)[0], blobOwner);
    }

    private static async Task<string> TokenAsync(HttpMessageInvoker invoker, string repository, string? authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"https://auth.test/token?scope=repository:{repository}:pull");
        request.Options.Set(ParentTier.TokenRegistries, (IReadOnlyList<string>)["registry.test"]);
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await invoker.SendAsync(request, CancellationToken.None);
        using var document = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return document.RootElement.GetProperty("token").GetString()!;
    }

    private static async Task<HttpStatusCode> BlobWithAsync(HttpMessageInvoker invoker, string token)
    {
        using var blob = new HttpRequestMessage(HttpMethod.Get, s_blob);
        blob.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
        using var response = await invoker.SendAsync(blob, CancellationToken.None);
        return response.StatusCode;
    }

    private static HttpResponseMessage Token(string token) =>
        new(HttpStatusCode.OK) { Content = new StringContent($"{{\"token\":\"{token}\",\"expires_in\":300}}") };

    private static HttpResponseMessage Whole(byte[] bytes, int? breakAfter = null, int? stallAfter = null)
    {
        var response = new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new StreamContent(new FaultyStream(bytes, breakAfter, stallAfter)),
        };
        response.Content.Headers.ContentLength = bytes.Length;
        response.Headers.ETag = new EntityTagHeaderValue($"\"{Digest}\"");
        return response;
    }

    private static HttpResponseMessage Partial(Seen request, byte[] bytes) =>
        Partial(RangeHeaderValue.Parse(request.Range!), bytes);

    private static HttpResponseMessage Partial(RangeHeaderValue range, byte[] bytes)
    {
        var from = range.Ranges.Single().From!.Value;
        var response = new HttpResponseMessage(HttpStatusCode.PartialContent) { Content = new ByteArrayContent(bytes[(int)from..]) };
        response.Content.Headers.ContentRange = new ContentRangeHeaderValue(from, bytes.Length - 1, bytes.Length);
        return response;
    }

    /// <summary>What a stand-in route was asked.</summary>
    private sealed record Seen(string? Range, string? IfRange, string? Via, string Path = "", string? Authorization = null);

    /// <summary>Three parents and direct, each a stand-in, in front of one <see cref="TierHandler"/>.</summary>
    private sealed class Cluster
    {
        public static readonly string[] Members = ["p0:3128", "p1:3128", "p2:3128"];
        private readonly int[] _rank = Rendezvous.Rank(Members, "blob " + Digest);
        private readonly Dictionary<int, StandIn> _routes = [];
        private readonly ParentTier _tier;

        public Cluster(TimeSpan? upstreamTimeout = null, bool directFallback = true)
        {
            _tier = new ParentTier(UpstreamConnectorTests.TestSettings() with
            {
                UpstreamProxies = [.. Members.Select(m => new Uri("http://" + m))],
                DirectFallback = directFallback,
                InstanceName = "child",
                UpstreamTimeout = upstreamTimeout ?? TimeSpan.FromSeconds(30),
            });
            Handler = new TierHandler(_tier, health: null, route => _routes[route.Parent] = new StandIn());
        }

        public TierHandler Handler { get; }

        /// <summary>Parent <paramref name="index"/> in the operator's order.</summary>
        public StandIn Parent(int index) => _routes[index];

        /// <summary>The blob's <paramref name="rank"/>-th parent (0: its owner).</summary>
        public StandIn Route(int rank) => _routes[_rank[rank]];

        public (long Requests, long Failures, long Bytes) Counts(int rank)
        {
            var counts = _tier.Counts[_rank[rank]];
            return (counts.Requests, counts.Failures, counts.Bytes);
        }

        public async Task<byte[]> GetBlobAsync()
        {
            using var invoker = new HttpMessageInvoker(Handler, disposeHandler: false);
            using var response = await invoker.SendAsync(new HttpRequestMessage(HttpMethod.Get, s_blob), CancellationToken.None);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(s_bytes.Length, response.Content.Headers.ContentLength);
            await using var body = await response.Content.ReadAsStreamAsync();
            using var copy = new MemoryStream();
            await body.CopyToAsync(copy).WaitAsync(TimeSpan.FromSeconds(20));
            return copy.ToArray();
        }
    }

    private sealed class StandIn : HttpMessageHandler
    {
        public Func<Seen, HttpResponseMessage> Answer { get; set; } = _ => new HttpResponseMessage(HttpStatusCode.BadGateway);

        public List<Seen> Requests { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var seen = new Seen(request.Headers.Range?.ToString(), request.Headers.IfRange?.ToString(), request.Headers.Via.ToString(),
                request.RequestUri!.PathAndQuery, request.Headers.Authorization?.ToString());
            lock (Requests)
            {
                Requests.Add(seen);
            }

            return Task.FromResult(Answer(seen));
        }
    }

    /// <summary>A body that throws (a reset) or waits for its reader to give up (a stall) after some bytes.</summary>
    private sealed class FaultyStream(byte[] bytes, int? breakAfter, int? stallAfter) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var end = Math.Min(bytes.Length, breakAfter ?? stallAfter ?? bytes.Length);
            if (_position == end && end < bytes.Length)
            {
                if (breakAfter is not null)
                {
                    throw new IOException("connection reset by peer");
                }

                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            var count = Math.Min(Math.Min(buffer.Length, 4096), end - _position);
            bytes.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
