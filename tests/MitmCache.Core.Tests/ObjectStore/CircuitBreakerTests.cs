using MitmCache.ObjectStore;

namespace MitmCache.Core.Tests.ObjectStore;

public sealed class CircuitBreakerTests
{
    private static readonly TimeSpan s_open = TimeSpan.FromSeconds(5);
    private readonly FakeTimeProvider _time = new();
    private readonly CircuitBreaker _breaker;

    public CircuitBreakerTests() => _breaker = new CircuitBreaker(s_open, TimeSpan.FromSeconds(12), _time);

    [Fact]
    public void TryPass_Closed_Allows()
    {
        Assert.Equal(BreakerPass.Allowed, _breaker.TryPass());
        Assert.Equal(BreakerState.Closed, _breaker.State);
        Assert.Null(_breaker.Reason);
    }

    [Fact]
    public void Failed_FirstFailure_OpensAndRejectsUntilTheOpenTimeIsOver()
    {
        Assert.True(_breaker.Failed(_breaker.TryPass(), "timeout: no answer"));

        Assert.Equal(BreakerState.Open, _breaker.State);
        Assert.Equal("timeout: no answer", _breaker.Reason);
        Assert.Equal(BreakerPass.Rejected, _breaker.TryPass());
        _time.Advance(s_open - TimeSpan.FromMilliseconds(1));
        Assert.Equal(BreakerPass.Rejected, _breaker.TryPass());
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(BreakerState.HalfOpen, _breaker.State);
    }

    [Fact]
    public void TryPass_HalfOpen_LetsOneProbeThrough_AndItsSuccessCloses()
    {
        _breaker.Failed(BreakerPass.Allowed, "down");
        _time.Advance(s_open);

        var probe = _breaker.TryPass();

        Assert.Equal(BreakerPass.Probe, probe);
        Assert.Equal(BreakerPass.Rejected, _breaker.TryPass());
        Assert.True(_breaker.Succeeded(probe));
        Assert.Equal(BreakerState.Closed, _breaker.State);
        Assert.Equal(BreakerPass.Allowed, _breaker.TryPass());
    }

    [Fact]
    public void Failed_Probe_DoublesTheOpenTimeUpToTheMaximum()
    {
        _breaker.Failed(BreakerPass.Allowed, "down");
        _time.Advance(s_open);
        Assert.False(_breaker.Failed(_breaker.TryPass(), "still down"));
        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(10), _breaker.RetryAt);

        _time.Advance(TimeSpan.FromSeconds(10));
        _breaker.Failed(_breaker.TryPass(), "still down");

        Assert.Equal(_time.GetUtcNow() + TimeSpan.FromSeconds(12), _breaker.RetryAt);
        Assert.Equal("still down", _breaker.Reason);
    }

    [Fact]
    public void Succeeded_ACallThatStartedBeforeTheFailure_DoesNotClose()
    {
        var early = _breaker.TryPass();
        _breaker.Failed(BreakerPass.Allowed, "down");

        Assert.False(_breaker.Succeeded(early));

        Assert.Equal(BreakerState.Open, _breaker.State);
    }

    [Fact]
    public void Abandoned_Probe_FreesTheSlotForAnother()
    {
        _breaker.Failed(BreakerPass.Allowed, "down");
        _time.Advance(s_open);
        var probe = _breaker.TryPass();

        _breaker.Abandoned(probe);

        Assert.Equal(BreakerPass.Probe, _breaker.TryPass());
    }

    [Fact]
    public void Succeeded_AfterRecovery_ResetsTheOpenTime()
    {
        _breaker.Failed(BreakerPass.Allowed, "down");
        _time.Advance(s_open);
        _breaker.Failed(_breaker.TryPass(), "down");
        _time.Advance(TimeSpan.FromSeconds(10));
        _breaker.Succeeded(_breaker.TryPass());

        _breaker.Failed(BreakerPass.Allowed, "down again");

        Assert.Equal(_time.GetUtcNow() + s_open, _breaker.RetryAt);
    }
}
