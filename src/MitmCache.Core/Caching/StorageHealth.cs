using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// Whether the disk can take new blobs now, and the readiness report built on it. After a storage failure (disk full,
/// read-only, the index engine closed) new blobs bypass the cache for <see cref="RetryInterval"/>, then caching is
/// tried again; a data directory unusable at start-up stays degraded until restart.
/// </summary>
internal sealed class StorageHealth(TimeProvider time, ILogger logger)
{
    /// <summary>How long after a storage failure new blobs bypass the cache.</summary>
    public static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);

    private volatile Failure? _failure;

    private sealed record Failure(string Message, DateTimeOffset At)
    {
        public bool ForGood => At == DateTimeOffset.MaxValue;
    }

    public bool IsDegraded => _failure is { } failure && (failure.ForGood || time.GetUtcNow() - failure.At < RetryInterval);

    /// <summary>The data directory cannot be used at all (logged by whoever found out): degraded until restart.</summary>
    public void FailedForGood(string message) => _failure = new Failure(message, DateTimeOffset.MaxValue);

    public void Failed(string message)
    {
        if (_failure is not { ForGood: true })
        {
            _failure = new Failure(message, time.GetUtcNow());
        }
    }

    /// <summary>A fill or store of <paramref name="digest"/> failed on storage: logged, and the breaker trips.</summary>
    public void Report(Digest digest, string message)
    {
        logger.FillStorageFailed(digest.ToString(), message);
        Failed(message);
    }

    /// <summary>A blob was committed: storage works again.</summary>
    public void Recovered()
    {
        if (_failure is not { ForGood: true })
        {
            _failure = null;
        }
    }

    /// <summary>
    /// Problems that make the proxy not ready, and degradations it serves through (pass-through while the disk is
    /// full or read-only). Both empty when all is well.
    /// </summary>
    public (IReadOnlyList<string> Problems, IReadOnlyList<string> Degraded) Readiness(string tempRoot, IndexDatabase index)
    {
        var problems = new List<string>();
        var degraded = new List<string>();
        try
        {
            var probe = Path.Combine(tempRoot, $".ready.{Guid.NewGuid():N}");
            File.WriteAllBytes(probe, [1]);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            degraded.Add($"cache storage not writable, serving pass-through: {ex.Message}");
        }

        if (_failure is { } failure && IsDegraded)
        {
            degraded.Add(failure.ForGood
                ? $"cache unavailable since start-up, serving pass-through: {failure.Message}"
                : $"cache storage failed at {failure.At:O}, serving pass-through: {failure.Message}");
        }

        try
        {
            index.Probe();
        }
        catch (Exception ex) when (ex is LiteDB.LiteException or IOException or ObjectDisposedException)
        {
            problems.Add($"index not available: {ex.Message}");
        }

        return (problems, degraded);
    }

    /// <summary>
    /// What the disk or the index engine throws when storage, not the code, failed. A LiteDB engine that closed
    /// itself (after an I/O error) answers queries with <see cref="ObjectDisposedException"/> from its own locks.
    /// </summary>
    public static bool IsStorageFailure(Exception ex) =>
        ex is IOException or UnauthorizedAccessException or LiteDB.LiteException or ObjectDisposedException;
}
