using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using Serilog.Extensions.Logging;

namespace MitmCache.Cli;

/// <summary>
/// The cache operations on the data directory of a stopped proxy: the real <see cref="BlobCache"/> and
/// index, opened in this process (which also runs the start-up repair). Only one process may have the
/// index open, so this fails while a proxy uses the directory.
/// </summary>
internal sealed class DataDirectoryCache : ICacheOperations
{
    private readonly Serilog.Core.Logger _log;
    private readonly SerilogLoggerFactory _loggers;
    private readonly IndexDatabase _index;
    private readonly BlobCache _cache;
    private readonly CacheAdmin _admin;

    private DataDirectoryCache(string dataDirectory, Serilog.Core.Logger log, SerilogLoggerFactory loggers, IndexDatabase index, BlobCache cache, CacheAdmin admin)
    {
        Source = $"the data directory {dataDirectory}";
        _log = log;
        _loggers = loggers;
        _index = index;
        _cache = cache;
        _admin = admin;
    }

    public string Source { get; }

    /// <exception cref="CliException">There is no cache there, it belongs to another user, or another process has it open.</exception>
    public static DataDirectoryCache Open(string dataDirectory)
    {
        var settings = new ProxySettings { DataDirectory = dataDirectory };
        var errors = new List<string>();
        DataDirectoryAccess.Check(settings.Layout, errors);
        if (errors.Count > 0)
        {
            throw new CliException(string.Join("\nmitmcache: ", errors));
        }

        if (!File.Exists(settings.Layout.Index))
        {
            throw new CliException($"there is no cache in {dataDirectory} (no {DataLayout.IndexFileName})");
        }

        var log = Logging.Create(json: false, Serilog.Events.LogEventLevel.Warning);
        var loggers = new SerilogLoggerFactory(log);
        var metrics = new CacheMetrics(); // nothing reads them: live counters are the running proxy's
        IndexDatabase? index = null;
        BlobCache cache;
        BlobRecords blobs;
        LinkRecords links;
        TagRecords tags;
        try
        {
            index = IndexDatabase.Open(settings, TimeProvider.System, loggers.CreateLogger<IndexDatabase>());
            (links, tags) = (new LinkRecords(index), new TagRecords(index));
            blobs = new BlobRecords(index, links, tags);
            cache = new BlobCache(settings, TimeProvider.System, metrics, loggers.CreateLogger<BlobCache>(), index, blobs);
        }
        catch (Exception ex) when (ex is CacheLockedException or CacheUnavailableException or IOException or LiteDB.LiteException or UnauthorizedAccessException)
        {
            index?.Dispose();
            loggers.Dispose();
            log.Dispose();
            throw new CliException(ex switch
            {
                CacheLockedException => $"{ex.Message}; give that proxy's address with --proxy",
                CacheUnavailableException => ex.InnerException?.Message is { } reason ? $"cannot open the cache in {dataDirectory}: {reason}" : ex.Message,
                _ => $"cannot open the cache in {dataDirectory}: {ex.Message}",
            });
        }

        var admin = new CacheAdmin(cache, blobs, links, tags, metrics, settings, live: false, loggers.CreateLogger<CacheAdmin>());
        return new DataDirectoryCache(dataDirectory, log, loggers, index, cache, admin);
    }

    public Task<CacheStats> StatsAsync(int top, CancellationToken cancellationToken) => Task.FromResult(_admin.Stats(top));

    public Task<IReadOnlyList<CacheEntry>> ListAsync(string? registry, string? repository, CancellationToken cancellationToken) =>
        Task.FromResult(_admin.List(registry, repository));

    public Task<PruneReport> PruneAsync(TimeSpan? olderThan, long? maxBytes, bool dryRun, CancellationToken cancellationToken) =>
        Task.FromResult(_admin.Prune(olderThan, maxBytes, dryRun));

    public Task<VerifyReport> VerifyAsync(bool delete, CancellationToken cancellationToken) =>
        Task.FromResult(_admin.Verify(delete, cancellationToken));

    public Task<int> RevokeAsync(string registry, string? repository, CancellationToken cancellationToken) =>
        Task.FromResult(new GrantRecords(_index).DeleteGrants(registry, repository));

    public void Dispose()
    {
        _cache.Dispose();
        _index.Dispose();
        _loggers.Dispose();
        _log.Dispose();
    }
}
