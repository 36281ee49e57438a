using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;

namespace MitmCache.Upstream;

/// <summary>
/// Forwards a request to an upstream unchanged and streams the answer back, both ways, without
/// buffering. Used for everything on an intercepted host that is not cached (token endpoints, pushes,
/// tag lists) and for plain-HTTP absolute-form proxy requests.
/// </summary>
internal sealed class HttpForwarder(HttpMessageInvoker invoker, ILogger<HttpForwarder> logger)
{
    public HttpMessageInvoker Invoker => invoker;

    public async Task ForwardAsync(HttpContext context, Uri target)
    {
        var request = context.Request;
        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? false;
        using var message = HeaderRules.CreateRequest(request, target, canHaveBody);

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
        }
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
