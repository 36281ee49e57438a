using System.Net;
using MitmCache.Core.Tests.Configuration;
using MitmCache.Tunneling;

namespace MitmCache.Core.Tests.Tunneling;

public class ConnectionLimiterTests
{
    private static readonly IPAddress s_a = IPAddress.Parse("10.0.0.1");
    private static readonly IPAddress s_b = IPAddress.Parse("10.0.0.2");

    private static ConnectionLimiter Create(int max, int perClient, TimeProvider? time = null) => new(max, perClient, time ?? new FakeTimeProvider());

    [Fact]
    public void TryAdmit_UpToPerClientCap_AdmittedThenOverClientLimit()
    {
        var limiter = Create(10, 2);

        Assert.Equal(ConnectionAdmission.Admitted, limiter.TryAdmit(s_a));
        Assert.Equal(ConnectionAdmission.Admitted, limiter.TryAdmit(s_a));
        Assert.Equal(ConnectionAdmission.OverClientLimit, limiter.TryAdmit(s_a));
        Assert.Equal(ConnectionAdmission.Admitted, limiter.TryAdmit(s_b));
        Assert.Equal(3, limiter.Open);
        Assert.Equal(2, limiter.OpenFrom(s_a));
    }

    [Fact]
    public void TryAdmit_TotalCapReached_OverTotalLimitForEveryone()
    {
        var limiter = Create(3, 2);
        limiter.TryAdmit(s_a);
        limiter.TryAdmit(s_a);
        limiter.TryAdmit(s_b);

        Assert.Equal(ConnectionAdmission.OverTotalLimit, limiter.TryAdmit(s_b));
        Assert.Equal(ConnectionAdmission.OverTotalLimit, limiter.TryAdmit(IPAddress.Parse("10.0.0.3")));
        Assert.Equal(3, limiter.Open);
    }

    [Fact]
    public void Release_FreesTheSlot_ClientAdmittedAgainAndEntryDropped()
    {
        var limiter = Create(10, 1);
        limiter.TryAdmit(s_a);
        Assert.Equal(ConnectionAdmission.OverClientLimit, limiter.TryAdmit(s_a));

        limiter.Release(s_a);

        Assert.Equal(0, limiter.Open);
        Assert.Equal(0, limiter.OpenFrom(s_a));
        Assert.Equal(ConnectionAdmission.Admitted, limiter.TryAdmit(s_a));
    }

    [Fact]
    public void TryAdmit_MappedIPv4_CountsAsTheSameClient()
    {
        var limiter = Create(10, 1);

        limiter.TryAdmit(IPAddress.Parse("::ffff:10.0.0.1"));

        Assert.Equal(ConnectionAdmission.OverClientLimit, limiter.TryAdmit(s_a));
        limiter.Release(s_a);
        Assert.Equal(0, limiter.OpenFrom(IPAddress.Parse("::ffff:10.0.0.1")));
    }

    [Fact]
    public void TryAdmit_NullClient_CountedInTotalOnly()
    {
        var limiter = Create(2, 1);

        Assert.Equal(ConnectionAdmission.Admitted, limiter.TryAdmit(null));
        Assert.Equal(ConnectionAdmission.Admitted, limiter.TryAdmit(null));
        Assert.Equal(ConnectionAdmission.OverTotalLimit, limiter.TryAdmit(null));
        limiter.Release(null);
        Assert.Equal(1, limiter.Open);
    }

    [Fact]
    public async Task TryAdmit_ConcurrentAdmitAndRelease_NeverOverCapAndEndsAtZero()
    {
        var limiter = Create(50, 20);
        var peak = 0;
        var clients = Enumerable.Range(1, 8).Select(i => IPAddress.Parse($"10.0.1.{i}")).ToArray();

        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            for (var i = 0; i < 20_000; i++)
            {
                var client = clients[(worker + i) % clients.Length];
                if (limiter.TryAdmit(client) == ConnectionAdmission.Admitted)
                {
                    var open = limiter.Open;
                    Interlocked.Exchange(ref peak, Math.Max(Volatile.Read(ref peak), open));
                    Assert.True(limiter.OpenFrom(client) <= 20);
                    limiter.Release(client);
                }
            }
        })));

        Assert.True(peak <= 50, $"peak {peak}");
        Assert.Equal(0, limiter.Open);
        Assert.All(clients, c => Assert.Equal(0, limiter.OpenFrom(c)));
    }

    [Fact]
    public void ShouldLogRefusal_Flood_FirstLoggedThenOncePerIntervalWithCount()
    {
        var time = new FakeTimeProvider();
        var limiter = Create(1, 1, time);
        limiter.TryAdmit(s_a);

        limiter.TryAdmit(s_b);
        Assert.True(limiter.ShouldLogRefusal(out var first));
        Assert.Equal(1, first);

        for (var i = 0; i < 100; i++)
        {
            limiter.TryAdmit(s_b);
            Assert.False(limiter.ShouldLogRefusal(out _));
        }

        time.Advance(TimeSpan.FromSeconds(5));
        limiter.TryAdmit(s_b);
        Assert.True(limiter.ShouldLogRefusal(out var later));
        Assert.Equal(101, later);
    }

    [Fact]
    public void Constructor_FromSettings_UsesConfiguredCaps()
    {
        var limiter = new ConnectionLimiter(TestSettings.Create() with { MaxConnections = 7, MaxConnectionsPerClient = 3 }, TimeProvider.System);

        Assert.Equal(7, limiter.MaxConnections);
        Assert.Equal(3, limiter.MaxPerClient);
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 0)]
    public void Constructor_CapBelowOne_Throws(int max, int perClient)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Create(max, perClient));
    }
}
