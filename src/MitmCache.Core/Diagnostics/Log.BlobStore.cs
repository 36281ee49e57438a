using Microsoft.Extensions.Logging;

namespace MitmCache.Diagnostics;

// The S3 blob tier (ObjectStore/). Keys and reasons only: credentials never reach a message.
internal static partial class Log
{
    [LoggerMessage(500, LogLevel.Warning, "Blob store {Location} unavailable ({Reason}): pulls go upstream and uploads wait; next try in {RetrySeconds} s")]
    public static partial void BlobStoreUnavailable(this ILogger logger, string location, string reason, double retrySeconds);

    [LoggerMessage(501, LogLevel.Information, "Blob store {Location} answers again")]
    public static partial void BlobStoreRecovered(this ILogger logger, string location);

    [LoggerMessage(502, LogLevel.Debug, "Blob store {Operation} {Key} failed: {Reason}")]
    public static partial void BlobStoreCallFailed(this ILogger logger, string operation, string key, string reason);

    [LoggerMessage(503, LogLevel.Error, "Blob store object {Key} does not match its digest: deleted ({Outcome}), the blob will come from upstream")]
    public static partial void BlobStoreObjectCorrupt(this ILogger logger, string key, string outcome);

    [LoggerMessage(504, LogLevel.Information, "Uploaded {Digest} to the blob store ({Bytes} bytes, {Parts} parts, {ElapsedMs} ms)")]
    public static partial void BlobStoreUploaded(this ILogger logger, string digest, long bytes, int parts, long elapsedMs);

    [LoggerMessage(505, LogLevel.Debug, "Upload of {Digest} skipped: {Reason}")]
    public static partial void BlobStoreUploadSkipped(this ILogger logger, string digest, string reason);

    [LoggerMessage(506, LogLevel.Warning, "Upload of {Digest} to the blob store failed (attempt {Attempt}); next try in {RetrySeconds} s")]
    public static partial void BlobStoreUploadFailed(this ILogger logger, string digest, int attempt, double retrySeconds);

    [LoggerMessage(507, LogLevel.Warning, "Blob store upload queue is full ({Capacity}): {Digest} stays local only")]
    public static partial void BlobStoreQueueFull(this ILogger logger, string digest, int capacity);

    [LoggerMessage(508, LogLevel.Error, "Local file of {Digest} does not match its digest: not uploaded")]
    public static partial void BlobStoreSourceCorrupt(this ILogger logger, string digest);

    [LoggerMessage(509, LogLevel.Warning, "Blob store upload queue could not be read or written: {Reason}")]
    public static partial void BlobStoreQueueFailed(this ILogger logger, string reason);

    [LoggerMessage(510, LogLevel.Warning, "Blob store object {Key} is not a valid tag pointer or link: ignored")]
    public static partial void BlobStoreTagInvalid(this ILogger logger, string key);

    [LoggerMessage(514, LogLevel.Warning, "Filling {Digest} from the blob store broke off after {Bytes} bytes: the rest comes from upstream")]
    public static partial void BlobStoreResumedUpstream(this ILogger logger, string digest, long bytes);

    [LoggerMessage(513, LogLevel.Debug, "Not filling {Digest} from the blob store: {Reason}")]
    public static partial void BlobStoreRefused(this ILogger logger, string digest, string reason);

    [LoggerMessage(511, LogLevel.Information, "Filling {Digest} from the blob store: {Reason}")]
    public static partial void BlobStoreFilling(this ILogger logger, string digest, string reason);

    [LoggerMessage(512, LogLevel.Information, "Serving {Registry}/{Repository} {Reference} from the blob store: {Reason}")]
    public static partial void BlobStoreServing(this ILogger logger, string registry, string repository, string reference, string reason);
}
