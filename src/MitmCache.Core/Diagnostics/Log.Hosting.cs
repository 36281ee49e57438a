using Microsoft.Extensions.Logging;

namespace MitmCache.Diagnostics;

internal static partial class Log
{
    [LoggerMessage(400, LogLevel.Warning, "Refused admin request {Path} from {Client} (Host {Host}): admin endpoints answer loopback clients only")]
    public static partial void AdminRefused(this ILogger logger, string path, string client, string host);

    [LoggerMessage(401, LogLevel.Information, "Admin: {Operation} requested by {Client}")]
    public static partial void AdminOperation(this ILogger logger, string operation, string client);

    [LoggerMessage(402, LogLevel.Warning, "Watchdog self-check failed, not pinging systemd: {Problem}")]
    public static partial void WatchdogSelfCheckFailed(this ILogger logger, string problem);

    [LoggerMessage(403, LogLevel.Information, "Watchdog self-check passes again")]
    public static partial void WatchdogSelfCheckRecovered(this ILogger logger);
}
