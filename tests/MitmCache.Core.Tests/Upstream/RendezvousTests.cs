using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

public sealed class RendezvousTests
{
    private static readonly string[] s_five = ["10.0.0.1:3128", "10.0.0.2:3128", "10.0.0.3:3128", "10.0.0.4:3128", "10.0.0.5:3128"];

    private static IReadOnlyList<string> Digests(int count) =>
        [.. Enumerable.Range(0, count).Select(i => "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(i))))];

    private static string Owner(IReadOnlyList<string> members, string key) => members[Rendezvous.Rank(members, key)[0]];

    [Fact]
    public void Rank_1000DigestsOver5Parents_SplitWithin20PercentOfEven()
    {
        var counts = Digests(1000).GroupBy(d => Owner(s_five, d)).ToDictionary(g => g.Key, g => g.Count());

        Assert.Equal(5, counts.Count);
        Assert.All(counts.Values, c => Assert.InRange(c, 160, 240));
    }

    [Fact]
    public void Rank_OneParentRemoved_OnlyItsDigestsMove_ToTheirRunnerUp()
    {
        var removed = s_five[2];
        var four = s_five.Where(p => p != removed).ToArray();

        foreach (var digest in Digests(1000))
        {
            var before = Rendezvous.Rank(s_five, digest).Select(i => s_five[i]).ToList();
            var after = Owner(four, digest);
            Assert.Equal(before[0] == removed ? before[1] : before[0], after);
        }
    }

    [Fact]
    public void Rank_OneParentAdded_MovesAboutOneSixthAndOnlyToTheNewParent()
    {
        string[] six = [.. s_five, "10.0.0.6:3128"];
        var moved = 0;

        foreach (var digest in Digests(1000))
        {
            var before = Owner(s_five, digest);
            var after = Owner(six, digest);
            if (before != after)
            {
                Assert.Equal(six[5], after);
                moved++;
            }
        }

        Assert.InRange(moved, 1000 / 6 * 8 / 10, 1000 / 6 * 12 / 10);
    }

    [Fact]
    public void Rank_SameMembersAnyOrder_SameOwner()
    {
        var reversed = s_five.Reverse().ToArray();

        Assert.All(Digests(200), d => Assert.Equal(Owner(s_five, d), Owner(reversed, d)));
    }

    [Fact]
    public void Score_Stable_KnownValue()
    {
        // Pinned: every node in a cluster, every version, must compute the same owner.
        // (python3: int.from_bytes(hashlib.sha256(b"10.0.0.1:3128\nsha256:00").digest()[:8], "big"))
        Assert.Equal(0x31d41d59b4f14760UL, Rendezvous.Score("10.0.0.1:3128", "sha256:00"));
    }
}
