using System.Net;
using System.Net.Security;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using MitmCache.Certificates;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Hosting;
using MitmCache.Upstream;

namespace MitmCache.Tunneling;

/// <summary>
/// The first connection middleware on the proxy port. It peeks at the first bytes:
/// <code>
///   CONNECT host:port ──policy──► refuse: 403 / 407 / 400
///                           ├───► tunnel: 200, raw relay to upstream (never decrypted)
///                           └───► intercept: 200, then Kestrel TLS (leaf minted for the host)
///                                            and Kestrel HTTP/1.1 or HTTP/2 inside
///   anything else ────────────► Kestrel HTTP, unconsumed (plain proxy requests, /healthz, /ca.crt)
/// </code>
/// Before any of that a connection must be from an allowed client and within the connection caps;
/// the head must arrive within <c>--header-timeout</c>, and a blind tunnel lives until it idles for
/// <c>--tunnel-idle-timeout</c>.
/// </summary>
internal sealed class ProxyConnectionMiddleware(
    ProxySettings settings,
    HostPolicy policy,
    ProxyAccess access,
    ConnectionLimiter limiter,
    UpstreamConnector connector,
    LeafCertificateCache leaves,
    ProxyMetrics metrics,
    ILogger<ProxyConnectionMiddleware> logger)
{
    /// <summary>Kestrel's HTTP handler, captured after <c>UseHttps</c> so plain connections can skip TLS.</summary>
    public ConnectionDelegate? HttpHandler { get; set; }

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate tls)
    {
        var scope = new ConnectionLogScope(connection.ConnectionId);
        using var logScope = logger.BeginScope(scope);
        if (!access.IsClientAllowed(connection.RemoteEndPoint))
        {
            logger.ClientRefused(connection.RemoteEndPoint?.ToString() ?? "?");
            await RespondAsync(connection, 403, "Forbidden", "client address not allowed");
            return;
        }

        var client = (connection.RemoteEndPoint as IPEndPoint)?.Address;
        var admission = limiter.TryAdmit(client);
        if (admission != ConnectionAdmission.Admitted)
        {
            await RefuseOverLimitAsync(connection, client, admission);
            return;
        }

        try
        {
            await ServeAsync(connection, tls, scope);
        }
        finally
        {
            limiter.Release(client);
        }
    }

    private async Task ServeAsync(ConnectionContext connection, ConnectionDelegate tls, ConnectionLogScope scope)
    {
        var input = connection.Transport.Input;
        using var headTimeout = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed);
        headTimeout.CancelAfter(settings.HeaderTimeout);
        while (true)
        {
            System.IO.Pipelines.ReadResult read;
            try
            {
                read = await input.ReadAsync(headTimeout.Token);
            }
            catch (OperationCanceledException)
            {
                logger.HeadTimedOut();
                return;
            }

            // Empty lines before the request line are ours to skip, within the head timeout.
            var buffer = read.Buffer.Slice(ConnectRequestParser.CountLeadingLineBreaks(read.Buffer));
            if (buffer.IsEmpty)
            {
                input.AdvanceTo(buffer.End);
                if (read.IsCompleted)
                {
                    return;
                }

                continue;
            }

            var parsed = ConnectRequestParser.Parse(buffer);
            switch (parsed.Status)
            {
                case ConnectParseStatus.Incomplete when !read.IsCompleted:
                    input.AdvanceTo(buffer.Start, buffer.End);
                    continue;
                case ConnectParseStatus.Incomplete:
                    input.AdvanceTo(buffer.End);
                    return;
                case ConnectParseStatus.NotConnect:
                    input.AdvanceTo(buffer.Start);
                    await HttpHandler!(connection);
                    return;
                case ConnectParseStatus.TooLarge:
                    input.AdvanceTo(buffer.End);
                    await RespondAsync(connection, 431, "Request Header Fields Too Large", "CONNECT head too large");
                    return;
                case ConnectParseStatus.Malformed:
                    input.AdvanceTo(buffer.End);
                    logger.MalformedConnect(parsed.Error!);
                    await RespondAsync(connection, 400, "Bad Request", parsed.Error!);
                    return;
                default:
                    input.AdvanceTo(buffer.GetPosition(parsed.Consumed));
                    await HandleConnectAsync(connection, parsed.Request!, tls, scope);
                    return;
            }
        }
    }

    /// <summary>Kestrel's TLS callback: the leaf for the SNI name, or the CONNECT host without SNI.</summary>
    public ValueTask<SslServerAuthenticationOptions> SelectCertificateAsync(TlsHandshakeCallbackContext context)
    {
        var target = InterceptTarget.From(context.Connection.Items)
            ?? throw new InvalidOperationException("TLS on a connection that was not intercepted");
        var sni = context.ClientHelloInfo.ServerName;

        // Only mint for an SNI name we would intercept anyway; otherwise use the CONNECT host.
        var name = !string.IsNullOrEmpty(sni) && HostPolicy.IsValidHostName(sni) && policy.IsIntercepted(sni.ToLowerInvariant())
            ? sni.ToLowerInvariant()
            : target.Host;
        return ValueTask.FromResult(leaves.GetServerOptions(name));
    }

    private async Task HandleConnectAsync(ConnectionContext connection, ConnectRequest request, ConnectionDelegate tls, ConnectionLogScope scope)
    {
        if (!access.IsAuthorized(request.ProxyAuthorization))
        {
            logger.ProxyAuthRequired(request.Authority);
            await RespondAsync(connection, 407, "Proxy Authentication Required", "proxy authentication required",
                "Proxy-Authenticate: Basic realm=\"MitmCache\"\r\n");
            return;
        }

        if (ParentTier.NamesHop(request.Via, settings.InstanceName))
        {
            logger.ConnectRefused(request.Authority, $"a loop: it already passed through {settings.InstanceName} (Via: {request.Via})");
            await RespondAsync(connection, 508, "Loop Detected", $"this request already passed through {settings.InstanceName}: check the --upstream-proxy lists of the tier");
            return;
        }

        var decision = policy.Decide(request.Host, request.Port, out var reason);
        scope.Decided(request.Authority, decision);
        logger.ConnectDecided(request.Authority, decision);
        switch (decision)
        {
            case PolicyDecision.Refuse:
                metrics.ConnectionRefused();
                logger.ConnectRefused(request.Authority, reason);
                await RespondAsync(connection, 403, "Forbidden", reason);
                return;
            case PolicyDecision.Tunnel:
                await TunnelAsync(connection, request);
                return;
            default:
                metrics.ConnectionIntercepted();
                connection.Items[InterceptTarget.ItemKey] = new InterceptTarget(request.Host, request.Port);
                await connection.Transport.Output.WriteAsync("HTTP/1.1 200 Connection Established\r\n\r\n"u8.ToArray());
                connection.Features.Set<IMemoryPoolFeature>(LargeBlockMemoryPool.Instance);
                await tls(connection);
                return;
        }
    }

    private async Task TunnelAsync(ConnectionContext connection, ConnectRequest request)
    {
        Stream upstream;
        try
        {
            ParentTier.ArrivedVia.Value = request.Via;
            upstream = await connector.ConnectAsync(request.Host, request.Port, connection.ConnectionClosed);
        }
        catch (UpstreamConnectException ex)
        {
            var (status, text) = ex.Error switch
            {
                ConnectError.Denied => (403, "Forbidden"),
                ConnectError.Timeout => (504, "Gateway Timeout"),
                _ => (502, "Bad Gateway"),
            };
            logger.TunnelConnectFailed(request.Authority, ex.Message);
            await RespondAsync(connection, status, text, ex.Message);
            return;
        }
        catch (OperationCanceledException)
        {
            return;
        }

        metrics.ConnectionTunnelled();
        await using (upstream)
        {
            await connection.Transport.Output.WriteAsync("HTTP/1.1 200 Connection Established\r\n\r\n"u8.ToArray());
            var result = await BlindTunnel.RelayAsync(connection.Transport, upstream, settings.TunnelIdleTimeout, connection.ConnectionClosed);
            if (result.IdleTimedOut)
            {
                logger.TunnelIdleClosed(request.Authority, settings.TunnelIdleTimeout);
            }

            logger.TunnelClosed(request.Authority, result.ToUpstream, result.ToClient);
        }
    }

    private async Task RefuseOverLimitAsync(ConnectionContext connection, IPAddress? client, ConnectionAdmission admission)
    {
        var perClient = admission == ConnectionAdmission.OverClientLimit;
        metrics.ConnectionOverLimit(perClient);
        var shown = client is { IsIPv4MappedToIPv6: true } ? client.MapToIPv4() : client; // as counted: 10.0.0.1, not ::ffff:10.0.0.1
        var reason = perClient
            ? $"too many connections from {shown} (--max-connections-per-client {limiter.MaxPerClient})"
            : $"too many connections (--max-connections {limiter.MaxConnections})";
        if (limiter.ShouldLogRefusal(out var refused))
        {
            logger.ConnectionLimitReached(reason, refused);
        }

        await RespondAsync(connection, 503, "Service Unavailable", reason + "; retry later", "Retry-After: 1\r\n");
    }

    private static async Task RespondAsync(ConnectionContext connection, int status, string reasonPhrase, string message, string extraHeaders = "")
    {
        var body = Encoding.UTF8.GetBytes($"MitmCache: {message}\n");
        var head = $"HTTP/1.1 {status} {reasonPhrase}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {body.Length}\r\n{extraHeaders}Connection: close\r\n\r\n";
        try
        {
            await connection.Transport.Output.WriteAsync(Encoding.ASCII.GetBytes(head));
            await connection.Transport.Output.WriteAsync(body);
            await connection.Transport.Output.CompleteAsync();
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException)
        {
            // The client is gone; nothing to tell it.
        }
    }
}
