using Microsoft.Extensions.Logging;
using MitmCache.Tunneling;

namespace MitmCache.Diagnostics;

/// <summary>Source-generated log messages. Event IDs are stable: 1xx tunneling, 2xx upstream, 3xx cache, 4xx hosting.</summary>
internal static partial class Log
{
    [LoggerMessage(100, LogLevel.Debug, "CONNECT {Target}: {Decision}")]
    public static partial void ConnectDecided(this ILogger logger, string target, PolicyDecision decision);

    [LoggerMessage(101, LogLevel.Warning, "Refused client {Client}: not in --allow-client")]
    public static partial void ClientRefused(this ILogger logger, string client);

    [LoggerMessage(102, LogLevel.Debug, "Connection sent no complete request head in time")]
    public static partial void HeadTimedOut(this ILogger logger);

    [LoggerMessage(103, LogLevel.Information, "Malformed CONNECT: {Error}")]
    public static partial void MalformedConnect(this ILogger logger, string error);

    [LoggerMessage(104, LogLevel.Information, "Proxy authentication required for {Target}")]
    public static partial void ProxyAuthRequired(this ILogger logger, string target);

    [LoggerMessage(105, LogLevel.Warning, "Tunnel to {Target} failed: {Error}")]
    public static partial void TunnelConnectFailed(this ILogger logger, string target, string error);

    [LoggerMessage(106, LogLevel.Information, "Tunnel to {Target} closed: {BytesSent} bytes sent, {BytesReceived} received")]
    public static partial void TunnelClosed(this ILogger logger, string target, long bytesSent, long bytesReceived);

    [LoggerMessage(108, LogLevel.Information, "Refused CONNECT {Target}: {Reason}")]
    public static partial void ConnectRefused(this ILogger logger, string target, string reason);

    [LoggerMessage(107, LogLevel.Information, "Refused plain-HTTP proxy request to {Target}: {Reason}")]
    public static partial void PlainRequestRefused(this ILogger logger, string target, string reason);

    [LoggerMessage(109, LogLevel.Warning, "Refused a connection: {Reason} ({Refused} refused since the last such message)")]
    public static partial void ConnectionLimitReached(this ILogger logger, string reason, long refused);

    [LoggerMessage(110, LogLevel.Information, "Tunnel to {Target} closed after {IdleTimeout} without traffic")]
    public static partial void TunnelIdleClosed(this ILogger logger, string target, TimeSpan idleTimeout);

    [LoggerMessage(111, LogLevel.Warning, "Intercepted host {Host} is outside the names the root CA permits ({Permitted}): clients would reject its certificate, so it is tunnelled and not cached. Create the CA with --permit for it, or stop intercepting it")]
    public static partial void InterceptOutsidePermittedNames(this ILogger logger, string host, string permitted);
}
