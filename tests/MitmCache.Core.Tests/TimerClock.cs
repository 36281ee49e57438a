namespace MitmCache.Core.Tests;

/// <summary>
/// A clock whose timers run on it: <see cref="Advance"/> moves the time and runs, in order and on the caller's
/// thread, every timer callback that falls due on the way. For the code whose work is driven by a timer;
/// <see cref="FakeTimeProvider"/> leaves timers on the system clock, so a whole proxy can run on it.
/// </summary>
public sealed class TimerClock : TimeProvider
{
    private readonly List<Timer> _timers = [];
    private DateTimeOffset _now = new(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_timers)
        {
            return _now;
        }
    }

    public override long GetTimestamp() => GetUtcNow().UtcTicks;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Timer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    public void Advance(TimeSpan delta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delta, TimeSpan.Zero);
        DateTimeOffset end;
        lock (_timers)
        {
            end = _now + delta;
        }

        while (true)
        {
            Timer? next;
            lock (_timers)
            {
                next = _timers.Where(t => t.Due <= end).MinBy(t => t.Due);
                if (next is null)
                {
                    _now = end;
                    return;
                }

                _now = next.Due!.Value;
                next.Due = next.Period > TimeSpan.Zero ? _now + next.Period : null;
                if (next.Due is null)
                {
                    _timers.Remove(next);
                }
            }

            next.Fire();
        }
    }

    private sealed class Timer(TimerClock clock, TimerCallback callback, object? state) : ITimer
    {
        public DateTimeOffset? Due { get; set; }

        public TimeSpan Period { get; private set; }

        public void Fire() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (clock._timers)
            {
                clock._timers.Remove(this);
                Period = period == Timeout.InfiniteTimeSpan ? TimeSpan.Zero : period;
                Due = dueTime == Timeout.InfiniteTimeSpan ? null : clock._now + dueTime;
                if (Due is not null)
                {
                    clock._timers.Add(this);
                }
            }

            return true;
        }

        public void Dispose()
        {
            lock (clock._timers)
            {
                clock._timers.Remove(this);
                Due = null;
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
