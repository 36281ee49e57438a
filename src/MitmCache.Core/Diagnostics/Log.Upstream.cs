using Microsoft.Extensions.Logging;

namespace MitmCache.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(200, LogLevel.Warning, "Upstream {Upstream} failed: {Reason}")]
    public static partial void UpstreamRequestFailed(this ILogger logger, string upstream, string reason);

    [LoggerMessage(201, LogLevel.Warning, "Upstream {Upstream} body failed after {Bytes} bytes: {Reason}")]
    public static partial void UpstreamBodyFailed(this ILogger logger, string upstream, long bytes, string reason);
}
