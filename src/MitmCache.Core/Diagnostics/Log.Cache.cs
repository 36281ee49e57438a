using Microsoft.Extensions.Logging;

namespace MitmCache.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(300, LogLevel.Information, "Committed {Digest} ({Bytes} bytes)")]
    public static partial void FillCommitted(this ILogger logger, string digest, long bytes);

    [LoggerMessage(301, LogLevel.Warning, "Fill of {Digest} failed: upstream broke after {Bytes} bytes: {Reason}")]
    public static partial void FillUpstreamFailed(this ILogger logger, string digest, long bytes, string reason);

    [LoggerMessage(326, LogLevel.Warning, "Fill of {Digest} broke after {Bytes} bytes ({Reason}): asking its origin for the rest")]
    public static partial void FillResuming(this ILogger logger, string digest, long bytes, string reason);

    [LoggerMessage(302, LogLevel.Warning, "Fill of {Digest} truncated: {Bytes} of {Expected} bytes")]
    public static partial void FillTruncated(this ILogger logger, string digest, long bytes, long expected);

    [LoggerMessage(303, LogLevel.Error, "Fill of {Digest} discarded: content does not match its digest ({Bytes} bytes)")]
    public static partial void FillDigestMismatch(this ILogger logger, string digest, long bytes);

    [LoggerMessage(304, LogLevel.Error, "Cache storage failed for {Digest}: {Reason}")]
    public static partial void FillStorageFailed(this ILogger logger, string digest, string reason);

    [LoggerMessage(305, LogLevel.Information, "Evicted {Count} blobs; cache now {Bytes} bytes")]
    public static partial void Evicted(this ILogger logger, int count, long bytes);

    [LoggerMessage(306, LogLevel.Information, "Cache opened: swept {TempFiles} temp files, dropped {Dropped} entries without files, adopted {Adopted} and removed {Removed} unindexed files; {Blobs} blobs, {Bytes} bytes")]
    public static partial void Reconciled(this ILogger logger, int tempFiles, int dropped, int adopted, int removed, int blobs, long bytes);

    [LoggerMessage(307, LogLevel.Warning, "Index flush failed: {Reason}")]
    public static partial void IndexFlushFailed(this ILogger logger, string reason);

    [LoggerMessage(310, LogLevel.Information, "{Method} {Registry}/{Repository} {Kind} {Reference}: {Result} {Status} {Bytes}B {ElapsedMs}ms")]
    public static partial void RegistryRequest(this ILogger logger, string method, string registry, string repository, string kind, string reference, string result, int status, long bytes, long elapsedMs);

    [LoggerMessage(311, LogLevel.Warning, "Serving stale {Registry}/{Repository}:{Reference} from cache: upstream {Reason}")]
    public static partial void ServingStale(this ILogger logger, string registry, string repository, string reference, string reason);

    [LoggerMessage(312, LogLevel.Warning, "Upstream manifest {Registry}/{Repository}@{Reference} is invalid: {Reason}")]
    public static partial void ManifestRejected(this ILogger logger, string registry, string repository, string reference, string reason);

    [LoggerMessage(313, LogLevel.Information, "Answered token request for {Registry} locally (upstream {Reason})")]
    public static partial void LocalTokenIssued(this ILogger logger, string registry, string reason);

    [LoggerMessage(314, LogLevel.Information, "Refused offline access to {Registry}/{Repository}: repository is not known to be public")]
    public static partial void OfflineRefused(this ILogger logger, string registry, string repository);

    [LoggerMessage(316, LogLevel.Error, "The cache index was unreadable: moved it aside to {MovedTo} and rebuilt the index from the blob files (tags, links and grants start empty)")]
    public static partial void IndexRebuilt(this ILogger logger, string movedTo);

    [LoggerMessage(317, LogLevel.Error, "The cache in {DataDirectory} cannot be used ({Reason}); serving pass-through without caching (--on-cache-failure passthrough)")]
    public static partial void CacheUnavailable(this ILogger logger, string dataDirectory, string reason);

    [LoggerMessage(318, LogLevel.Error, "Cached {Digest} no longer matches its digest (altered on disk): quarantined, it will be fetched again")]
    public static partial void BlobCorrupt(this ILogger logger, string digest);

    [LoggerMessage(315, LogLevel.Information, "Refused an offline token request for {Registry}: the credential holds no live grant for every requested repository")]
    public static partial void OfflineTokenRefused(this ILogger logger, string registry);

    [LoggerMessage(319, LogLevel.Warning, "Cache index write failed, the request goes on without it: {Reason}")]
    public static partial void IndexWriteFailed(this ILogger logger, string reason);

    [LoggerMessage(320, LogLevel.Information, "Pruned {Count} blobs ({Bytes} bytes); cache now {Remaining} bytes")]
    public static partial void Pruned(this ILogger logger, int count, long bytes, long remaining);

    [LoggerMessage(321, LogLevel.Warning, "Verify: {Digest} is corrupt: {Problem}")]
    public static partial void CorruptBlobFound(this ILogger logger, string digest, string problem);

    [LoggerMessage(322, LogLevel.Information, "Verified {Count} blobs ({Bytes} bytes): {Corrupt} corrupt")]
    public static partial void Verified(this ILogger logger, int count, long bytes, int corrupt);

    [LoggerMessage(EventId = 323, Message = "Index maintenance: deleted {ExpiredGrants} expired grants, {StaleVisibility} visibility records of repositories nothing is cached from, {OrphanLinks} links of blobs no longer cached")]
    public static partial void IndexMaintained(this ILogger logger, LogLevel level, int expiredGrants, int staleVisibility, int orphanLinks);

    [LoggerMessage(324, LogLevel.Warning, "Index maintenance failed, tried again in {Interval}: {Reason}")]
    public static partial void IndexMaintenanceFailed(this ILogger logger, TimeSpan interval, string reason);

    [LoggerMessage(325, LogLevel.Error, "A hook after {Digest} was committed failed (the blob stays committed): {Reason}")]
    public static partial void CommitHookFailed(this ILogger logger, string digest, string reason);

    [LoggerMessage(328, LogLevel.Information, "Repository {Registry}/{Repository} is {Visibility}, as upstream answered a client without credentials")]
    public static partial void VisibilityLearned(this ILogger logger, string registry, string repository, string visibility);

    [LoggerMessage(329, LogLevel.Debug, "Could not find out whether {Registry}/{Repository} is public: {Reason}")]
    public static partial void VisibilityUnknown(this ILogger logger, string registry, string repository, string reason);
}
