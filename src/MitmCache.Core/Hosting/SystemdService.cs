using System.Collections;
using System.Globalization;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;

namespace MitmCache.Hosting;

/// <summary>
/// What the service manager hears from the proxy (<c>Type=notify</c>): <c>READY=1</c> once the CA is
/// loaded, the cache index is open (or pass-through chosen) and the listener accepts; <c>STOPPING=1</c>
/// when a shutdown starts; and with <c>WatchdogSec=</c>, <c>WATCHDOG=1</c> every half period, but only
/// after <see cref="ListenerSelfCheck"/> got an answer from <c>/readyz</c> through the real listener
/// (the accept loop, Kestrel, the router and an index lookup). A hung process stops answering and stops
/// pinging, and systemd kills and restarts it. Absent outside systemd (no <c>NOTIFY_SOCKET</c>).
/// </summary>
internal sealed class SystemdService : IAsyncDisposable
{
    private readonly ISystemdNotifier _notifier;
    private readonly TimeSpan? _watchdogInterval;
    private readonly CancellationTokenSource _stop = new();
    private Task _watchdog = Task.CompletedTask;
    private volatile bool _stopping;

    private SystemdService(ISystemdNotifier notifier, TimeSpan? watchdogInterval)
    {
        _notifier = notifier;
        _watchdogInterval = watchdogInterval;
    }

    /// <summary>The notifier when systemd listens (<c>NOTIFY_SOCKET</c>), else null.</summary>
    public static SystemdService? FromEnvironment(IDictionary environment, ISystemdNotifier notifier)
    {
        if (!notifier.IsEnabled)
        {
            return null;
        }

        // WATCHDOG_PID, when set, names the process that must ping: not a child that inherited the variables.
        TimeSpan? interval = null;
        if (environment["WATCHDOG_USEC"] is string usecText
            && long.TryParse(usecText, NumberStyles.None, CultureInfo.InvariantCulture, out var usec) && usec > 0
            && (environment["WATCHDOG_PID"] is not string pid || pid.Length == 0 || pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)))
        {
            interval = TimeSpan.FromMicroseconds(usec / 2);
        }

        return new SystemdService(notifier, interval);
    }

    public TimeSpan? WatchdogInterval => _watchdogInterval;

    public void Ready(string status) => _notifier.Notify(new ServiceState($"READY=1\nSTATUS={status}"));

    public void Stopping(string status)
    {
        _stopping = true;
        _notifier.Notify(new ServiceState($"STOPPING=1\nSTATUS={status}"));
    }

    /// <summary>Pings the watchdog after each self-check that passes, until disposed.</summary>
    public void StartWatchdog(ListenerSelfCheck check, TimeProvider time, ILogger logger)
    {
        if (_watchdogInterval is { } interval)
        {
            _watchdog = WatchdogAsync(check, interval, time, logger, _stop.Token);
        }
    }

    private async Task WatchdogAsync(ListenerSelfCheck check, TimeSpan interval, TimeProvider time, ILogger logger, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(interval, time);
        var failing = false;
        do
        {
            // While draining the listener is closed on purpose: the drain is bounded by --shutdown-timeout,
            // and systemd's TimeoutStopSec bounds it again.
            var problem = _stopping ? null : await check.ProbeAsync(interval, stop);
            if (stop.IsCancellationRequested)
            {
                return;
            }

            if (problem is null)
            {
                _notifier.Notify(new ServiceState("WATCHDOG=1"));
                if (failing)
                {
                    logger.WatchdogSelfCheckRecovered();
                }
            }
            else if (!failing)
            {
                logger.WatchdogSelfCheckFailed(problem);
            }

            failing = problem is not null;
        }
        while (await WaitAsync(timer, stop));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken stop)
    {
        try
        {
            return await timer.WaitForNextTickAsync(stop);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _watchdog;
        _stop.Dispose();
    }
}
