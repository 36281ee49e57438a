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

    [LoggerMessage(203, LogLevel.Warning, "Upstream {Upstream} sent a {What} larger than {Limit}: not read further")]
    public static partial void UpstreamBodyTooLarge(this ILogger logger, string upstream, string what, string limit);

    [LoggerMessage(204, LogLevel.Warning, "Not following a redirect: {Reason}")]
    public static partial void RedirectRefused(this ILogger logger, string reason);

    [LoggerMessage(205, LogLevel.Warning, "Ignoring the token realm {Realm} named by {Registry}: a realm must be https, and may not be a registry ping, blob or manifest path, nor a repository path under another host's /v2/")]
    public static partial void RealmIgnored(this ILogger logger, string realm, string registry);

    [LoggerMessage(206, LogLevel.Warning, "Upstream {Upstream} is down ({Reason}): answering from the cache without asking it until a probe gets an answer")]
    public static partial void UpstreamDown(this ILogger logger, string upstream, string reason);

    [LoggerMessage(207, LogLevel.Information, "Upstream {Upstream} answers again, after {Seconds} s down")]
    public static partial void UpstreamUp(this ILogger logger, string upstream, double seconds);

    [LoggerMessage(208, LogLevel.Debug, "Upstream {Upstream} still down: probe {Reason}")]
    public static partial void UpstreamProbeFailed(this ILogger logger, string upstream, string reason);

    [LoggerMessage(209, LogLevel.Warning, "Blob {Path} from {From} broke after {Bytes} bytes ({Reason}): the rest comes from {Next} with a Range")]
    public static partial void ParentBodyResuming(this ILogger logger, string path, string from, long bytes, string reason, string next);

    [LoggerMessage(210, LogLevel.Warning, "Blob {Path} could not be resumed after {Bytes} bytes: {Reason}")]
    public static partial void ParentBodyNotResumed(this ILogger logger, string path, long bytes, string reason);
}
