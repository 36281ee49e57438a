using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

public sealed class ParentTierTests
{
    private const string Key = "blob sha256:2222222222222222222222222222222222222222222222222222222222222222";
    private static readonly string[] s_members = ["p0:3128", "p1:3128", "p2:3128"];

    private static ParentTier Tier(bool directFallback = true) => new(UpstreamConnectorTests.TestSettings() with
    {
        UpstreamProxies = [.. s_members.Select(m => new Uri("http://" + m))],
        DirectFallback = directFallback,
    });

    [Fact]
    public void Routes_AllUp_RankOrderThenDirect()
    {
        var rank = Rendezvous.Rank(s_members, Key);

        Assert.Equal([.. rank, -1], Tier().Routes(Key).Select(r => r.Parent));
    }

    [Fact]
    public void Routes_OwnerDegraded_RanksLast_StillBeforeDirect()
    {
        var rank = Rendezvous.Rank(s_members, Key);
        var tier = Tier();
        tier.States[rank[0]].Degraded = "cache storage not writable, serving pass-through: read-only file system";

        Assert.Equal([rank[1], rank[2], rank[0], -1], tier.Routes(Key).Select(r => r.Parent));
    }

    [Fact]
    public void Routes_OwnerDownRunnerUpDegraded_DownLeftOut_DegradedLast_NoDirectWhenOff()
    {
        var rank = Rendezvous.Rank(s_members, Key);
        var tier = Tier(directFallback: false);
        lock (tier.States[rank[0]].Gate)
        {
            tier.States[rank[0]].GoDown(0, DateTimeOffset.UnixEpoch, "refused");
        }

        tier.States[rank[1]].Degraded = "bucket unreachable";

        Assert.Equal([rank[2], rank[1]], tier.Routes(Key).Select(r => r.Parent));
    }

    [Theory]
    [InlineData("ready\n", null)]
    [InlineData("degraded: upstream registry.test down for 3 s (refused), answered from the cache; next probe in 1 s\n", null)]
    [InlineData("degraded: parent 10.0.0.1:3128 down for 3 s (refused), its requests go to the next parent in rank\n", null)]
    [InlineData("degraded: upstream a down\ndegraded: cache storage not writable, serving pass-through: disk full\n", "cache storage not writable, serving pass-through: disk full")]
    public void OwnDegradation_UpstreamsItFindsDownDoNotCount(string body, string? expected) =>
        Assert.Equal(expected, ParentTier.OwnDegradation(body));
}
