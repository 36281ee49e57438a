using Microsoft.Extensions.Logging;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>What one <see cref="IndexMaintenance.Run"/> deleted.</summary>
internal readonly record struct MaintenanceReport(int ExpiredGrants, int StaleVisibility, int OrphanLinks);

/// <summary>
/// Keeps the index of a long-lived node from growing without bound, off the request path, on a timer of the
/// injected clock: every <see cref="Interval"/> it deletes expired grants (a bearer token's grant lasts minutes,
/// and every token has its own) and the visibility of repositories nothing has been cached from for the offline
/// window, and checkpoints LiteDB's log into the data file; once a day it also sweeps links whose blob is gone.
/// A removed blob's links and tags go with it at once (<see cref="BlobRecords.DeleteBlob"/>): the sweep only
/// collects what older versions (which kept the links of evicted blobs) or a removal racing a link left.
/// Everything deleted here only makes a later answer stricter; nothing here ever makes a link.
/// </summary>
internal sealed class IndexMaintenance : IDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    /// <summary>How often links are swept (each costs a lookup, so not every <see cref="Interval"/>).</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromDays(1);

    private readonly IndexDatabase _index;
    private readonly BlobRecords _blobs;
    private readonly LinkRecords _links;
    private readonly GrantRecords _grants;
    private readonly RepositoryVisibility _visibility;
    private readonly TimeSpan _staleAfter;
    private readonly TimeProvider _time;
    private readonly ILogger<IndexMaintenance> _logger;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private DateTimeOffset? _lastSweep;

    public IndexMaintenance(IndexDatabase index, BlobRecords blobs, LinkRecords links, GrantRecords grants, RepositoryVisibility visibility,
        ProxySettings settings, TimeProvider time, ILogger<IndexMaintenance> logger)
    {
        _index = index;
        _blobs = blobs;
        _links = links;
        _grants = grants;
        _visibility = visibility;
        _staleAfter = settings.OfflineGrantWindow;
        _time = time;
        _logger = logger;
        _timer = time.CreateTimer(_ => RunSafely(), null, Interval, Interval);
    }

    /// <summary>One pass (the timer's; a pass still running when the next is due makes that one wait).</summary>
    public MaintenanceReport Run()
    {
        lock (_gate)
        {
            var now = _time.GetUtcNow();
            var expired = _grants.DeleteExpiredGrants(now.UtcDateTime);
            var stale = _visibility.DeleteStale((now - _staleAfter).UtcDateTime, repository => _links.AnyIn(repository.Id));
            var orphans = 0;
            if (_lastSweep is not { } last || now - last >= SweepInterval)
            {
                orphans = _links.DeleteOrphans(_blobs.Contains);
                _lastSweep = now;
            }

            _index.Checkpoint();
            var report = new MaintenanceReport(expired, stale, orphans);
            _logger.IndexMaintained(report == default ? LogLevel.Debug : LogLevel.Information, expired, stale, orphans);
            return report;
        }
    }

    private void RunSafely()
    {
        try
        {
            Run();
        }
        catch (Exception ex) when (IndexDatabase.IsStorageFailure(ex) || ex is LiteDB.LiteException or ObjectDisposedException)
        {
            _logger.IndexMaintenanceFailed(Interval, ex.Message);
        }
    }

    public void Dispose() => _timer.Dispose();
}
