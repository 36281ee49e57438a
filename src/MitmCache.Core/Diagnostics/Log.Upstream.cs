using Microsoft.Extensions.Logging;

namespace MitmCache.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(200, LogLevel.Warning, "Upstream {Upstream} failed: {Reason}")]
    public static partial void UpstreamRequestFailed(this ILogger logger, string upstream, string reason);

    [LoggerMessage(201, LogLevel.Warning, "Upstream {Upstream} body failed after {Bytes} bytes: {Reason}")]
    public static partial void UpstreamBodyFailed(this ILogger logger, string upstream, long bytes, string reason);

    [LoggerMessage(202, LogLevel.Debug, "Request to {Upstream} not forwarded: the client's body is invalid: {Reason}")]
    public static partial void ClientBodyInvalid(this ILogger logger, string upstream, string reason);
}
