namespace MitmCache.ObjectStore;

/// <summary>What the breaker says about the engine: the numbers are the value of the state gauge.</summary>
internal enum BreakerState
{
    /// <summary>Calls go through.</summary>
    Closed = 0,

    /// <summary>The open time is over: the next call is the one probe, everyone else is still turned away.</summary>
    HalfOpen = 1,

    /// <summary>The engine failed: calls are turned away at once, until <see cref="CircuitBreaker.RetryAt"/>.</summary>
    Open = 2,
}

/// <summary>What a caller may do now.</summary>
internal enum BreakerPass
{
    /// <summary>Do not call the engine: go on without it.</summary>
    Rejected,

    /// <summary>Call it (the breaker is closed).</summary>
    Allowed,

    /// <summary>Call it: this call decides whether the breaker closes. Report it, or abandon it.</summary>
    Probe,
}

/// <summary>
/// A circuit breaker for a dependency that must never slow a pull down: the first failure opens it, so a dead
/// or erroring engine costs one short timeout and then nothing; after <c>openFor</c> one probe call goes
/// through, and its success closes the breaker; each failed probe doubles the wait, up to <c>maxOpenFor</c>.
/// A failure seen on a call that started while the breaker was closed (say, a body that breaks mid-read)
/// opens it too; a late success of such a call never closes it, only a probe does.
/// </summary>
internal sealed class CircuitBreaker
{
    private readonly Lock _gate = new();
    private readonly TimeSpan _firstOpenFor;
    private readonly TimeSpan _maxOpenFor;
    private readonly TimeProvider _time;
    private BreakerState _state = BreakerState.Closed;
    private TimeSpan _openFor;
    private DateTimeOffset _retryAt;
    private DateTimeOffset _openedAt;
    private bool _probeInFlight;
    private string? _reason;

    public CircuitBreaker(TimeSpan openFor, TimeSpan maxOpenFor, TimeProvider time)
    {
        _firstOpenFor = _openFor = openFor;
        _maxOpenFor = maxOpenFor;
        _time = time;
    }

    /// <summary>The state now (an open breaker whose time is over reads as half-open).</summary>
    public BreakerState State
    {
        get
        {
            lock (_gate)
            {
                return _state == BreakerState.Open && _time.GetUtcNow() >= _retryAt ? BreakerState.HalfOpen : _state;
            }
        }
    }

    /// <summary>Why the breaker is not closed (the last failure); null when closed.</summary>
    public string? Reason
    {
        get
        {
            lock (_gate)
            {
                return _state == BreakerState.Closed ? null : _reason;
            }
        }
    }

    /// <summary>When the breaker opened, while it is not closed.</summary>
    public DateTimeOffset? OpenedAt
    {
        get
        {
            lock (_gate)
            {
                return _state == BreakerState.Closed ? null : _openedAt;
            }
        }
    }

    /// <summary>When the next probe may go; now or earlier when the breaker is closed.</summary>
    public DateTimeOffset RetryAt
    {
        get
        {
            lock (_gate)
            {
                return _state == BreakerState.Closed ? DateTimeOffset.MinValue : _retryAt;
            }
        }
    }

    public BreakerPass TryPass()
    {
        lock (_gate)
        {
            switch (_state)
            {
                case BreakerState.Closed:
                    return BreakerPass.Allowed;
                case BreakerState.Open when _time.GetUtcNow() < _retryAt:
                    return BreakerPass.Rejected;
                case BreakerState.HalfOpen when _probeInFlight:
                    return BreakerPass.Rejected;
                default:
                    _state = BreakerState.HalfOpen;
                    _probeInFlight = true;
                    return BreakerPass.Probe;
            }
        }
    }

    /// <summary>The engine answered. Returns true when this closed the breaker.</summary>
    public bool Succeeded(BreakerPass pass)
    {
        lock (_gate)
        {
            if (pass != BreakerPass.Probe || _state != BreakerState.HalfOpen)
            {
                return false;
            }

            _state = BreakerState.Closed;
            _probeInFlight = false;
            _openFor = _firstOpenFor;
            _reason = null;
            return true;
        }
    }

    /// <summary>The engine failed (unreachable, timed out, 5xx, refused our keys). Returns true when this opened a closed breaker.</summary>
    public bool Failed(BreakerPass pass, string reason)
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            _reason = reason;
            if (pass == BreakerPass.Probe && _state == BreakerState.HalfOpen)
            {
                _probeInFlight = false;
                _openFor = TimeSpan.FromTicks(Math.Min(_openFor.Ticks * 2, _maxOpenFor.Ticks));
                _state = BreakerState.Open;
                _retryAt = now + _openFor;
                return false;
            }

            if (_state != BreakerState.Closed)
            {
                return false;
            }

            _state = BreakerState.Open;
            _openedAt = now;
            _retryAt = now + _openFor;
            return true;
        }
    }

    /// <summary>A call ended for the caller's reasons (cancelled), saying nothing about the engine: a probe slot is freed.</summary>
    public void Abandoned(BreakerPass pass)
    {
        lock (_gate)
        {
            if (pass == BreakerPass.Probe && _state == BreakerState.HalfOpen)
            {
                _probeInFlight = false;
            }
        }
    }
}
