using MitmCache.Caching;

namespace MitmCache.Core.Tests.Caching;

public sealed class OriginChainTests
{
    [Fact]
    public async Task FetchAsync_FirstOriginFaults_NextAnswersAndALaterFetchAsksItFirst()
    {
        var bucket = new Scripted(new OriginFault("", "not in the bucket"));
        var upstream = new Scripted(Body(0), Body(7));
        var chain = new OriginChain([bucket, upstream]);

        using var first = await chain.FetchAsync(0, CancellationToken.None);
        using var resumed = await chain.FetchAsync(7, CancellationToken.None);

        Assert.Equal(0, Assert.IsType<OriginBody>(first).Offset);
        Assert.Equal(7, Assert.IsType<OriginBody>(resumed).Offset);
        Assert.Equal([0L], bucket.Asked);
        Assert.Equal([0L, 7L], upstream.Asked); // the rest comes from where the bytes came from
    }

    [Fact]
    public async Task FetchAsync_RefusalFromFirstOrigin_IsTheAnswer()
    {
        var refusal = new OriginRefusal(new HttpResponseMessage(System.Net.HttpStatusCode.Unauthorized));
        var upstream = new Scripted(Body(0));
        var chain = new OriginChain([new Scripted(refusal), upstream]);

        Assert.Same(refusal, await chain.FetchAsync(0, CancellationToken.None));
        Assert.Empty(upstream.Asked);
    }

    [Fact]
    public async Task FetchAsync_EveryOriginFaults_LastFaultIsTheAnswer()
    {
        var chain = new OriginChain([new Scripted(new OriginFault("", "bucket down")), new Scripted(new OriginFault("connect", "refused"))]);

        Assert.Equal(new OriginFault("connect", "refused"), await chain.FetchAsync(0, CancellationToken.None));
    }

    private static OriginBody Body(long offset) => new(new MemoryStream([1, 2, 3]), offset, 10, "application/octet-stream", ProvesAccess: true);

    private sealed class Scripted(params OriginAnswer[] answers) : IBlobOrigin
    {
        private int _next;

        public List<long> Asked { get; } = [];

        public Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
        {
            Asked.Add(offset);
            return Task.FromResult(answers[_next++]);
        }
    }
}
