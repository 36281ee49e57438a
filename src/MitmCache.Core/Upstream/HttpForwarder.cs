using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;

namespace MitmCache.Upstream;

/// <summary>
/// Forwards a request to an upstream unchanged and streams the answer back, both ways, without
/// buffering. Used for everything on an intercepted host that is not cached (token endpoints, pushes,
/// tag lists) and for plain-HTTP absolute-form proxy requests. An upstream known down (<see cref="UpstreamHealth"/>)
/// gets nothing: 503 at once. What these requests find out is not recorded there: a client chooses their hosts.
/// </summary>
internal sealed class HttpForwarder(HttpMessageInvoker invoker, UpstreamHealth health, ILogger<HttpForwarder> logger)
{
    public HttpMessageInvoker Invoker => invoker;

    public async Task ForwardAsync(HttpContext context, Uri target)
    {
        if (target.Scheme == Uri.UriSchemeHttps && health.FindDown(target.Authority) is { } down)
        {
            var (status, reason) = Describe(health.Unavailable(down));
            await WriteErrorAsync(context.Response, status, $"MitmCache: upstream {target.Authority}: {reason}");
            return;
        }

        var request = context.Request;
        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? false;
        using var message = HeaderRules.CreateRequest(request, target, canHaveBody);
        try
        {
            await SendAndRelayAsync(context, message, target);
        }
        finally
        {
            // Whatever happened, no read of the client's body may outlive the request.
            if (message.Content is ForwardedRequestBody body)
            {
                await body.StopAsync();
            }
        }
    }

    private async Task SendAndRelayAsync(HttpContext context, HttpRequestMessage message, Uri target)
    {
        HttpResponseMessage response;
        try
        {
            response = await invoker.SendAsync(message, context.RequestAborted);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                return;
            }

            // Reading the client's own body failed (bad chunking, Transfer-Encoding with Content-Length):
            // that is the client's error, answered as Kestrel would have, not blamed on the upstream.
            if (ClientBodyError(ex) is { } bad)
            {
                logger.ClientBodyInvalid(target.Authority, bad.Message);
                await WriteErrorAsync(context.Response, bad.StatusCode, $"MitmCache: invalid request body: {bad.Message}");
                return;
            }

            var (status, reason) = Describe(ex);
            logger.UpstreamRequestFailed(target.Authority, reason);
            await WriteErrorAsync(context.Response, status, $"MitmCache: upstream {target.Authority}: {reason}");
            return;
        }

        using (response)
        {
            HeaderRules.CopyResponseHead(response, context.Response);
            await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            var result = await StreamCopier.CopyAsync(body, context.Response.Body, context.RequestAborted);
            if (result.Failure == CopyFailure.Read)
            {
                // The upstream died mid-body: the client must see a broken response, not a clean end.
                logger.UpstreamBodyFailed(target.Authority, result.Bytes, result.Error?.Message ?? "");
                context.Abort();
            }
            else if (result.Failure == CopyFailure.None)
            {
                // The whole answer goes out now, before the client's unread body is dealt with.
                await context.Response.CompleteAsync();
            }
        }
    }

    private static BadHttpRequestException? ClientBodyError(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is BadHttpRequestException bad)
            {
                return bad;
            }
        }

        return null;
    }

    /// <summary>Maps an upstream failure to a status the client can act on.</summary>
    public static (int Status, string Reason) Describe(Exception ex)
    {
        var connect = ex as UpstreamConnectException ?? ex.InnerException as UpstreamConnectException;
        if (connect is not null)
        {
            return connect.Error switch
            {
                ConnectError.Denied => (StatusCodes.Status403Forbidden, connect.Message),
                ConnectError.Timeout => (StatusCodes.Status504GatewayTimeout, connect.Message),
                ConnectError.Down => (StatusCodes.Status503ServiceUnavailable, connect.Message),
                _ => (StatusCodes.Status502BadGateway, connect.Message),
            };
        }

        return ex switch
        {
            OperationCanceledException or TimeoutException => (StatusCodes.Status504GatewayTimeout, "timed out"),
            HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError } =>
                (StatusCodes.Status502BadGateway, "TLS to the upstream failed (certificate not trusted? see --upstream-ca)"),
            _ => (StatusCodes.Status502BadGateway, ex.InnerException?.Message ?? ex.Message),
        };
    }

    public static async Task WriteErrorAsync(HttpResponse response, int status, string message)
    {
        if (response.HasStarted)
        {
            return;
        }

        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        await response.WriteAsync(message + "\n");
    }
}
