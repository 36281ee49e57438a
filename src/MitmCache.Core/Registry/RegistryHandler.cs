using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// Entry point for <c>/v2/</c> requests on intercepted hosts. Parses the route before anything else
/// (hostile paths and digests never reach the file system), then dispatches: ping, blobs, manifests;
/// every other registry call (pushes, tag lists, catalog, referrers) is forwarded untouched.
/// </summary>
internal sealed class RegistryHandler(
    BlobEndpoint blobs,
    ManifestEndpoint manifests,
    PingEndpoint ping,
    HttpForwarder forwarder,
    CacheMetrics metrics,
    ILogger<RegistryHandler> logger)
{
    public async Task HandleAsync(HttpContext context, InterceptTarget target, string rawTarget)
    {
        var started = Stopwatch.GetTimestamp();
        var query = rawTarget.IndexOf('?');
        var route = RegistryRoute.Parse(query < 0 ? rawTarget : rawTarget[..query]);
        var readOnly = HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method);
        var outcome = route switch
        {
            PingRoute when readOnly => await ping.HandleAsync(context, target),
            BlobRoute blob when readOnly => await blobs.HandleAsync(context, target, blob),
            ManifestRoute manifest when readOnly => await manifests.HandleAsync(context, target, manifest),
            InvalidRoute invalid => await RejectAsync(context, invalid),
            _ => await ForwardAsync(context, target, rawTarget),
        };

        var (kind, repository, reference) = route switch
        {
            BlobRoute b => ("blob", b.Name, b.Digest.ToString()),
            ManifestRoute m => ("manifest", m.Name, m.Reference),
            PingRoute => ("ping", "", ""),
            _ => ("other", "", ""),
        };
        metrics.Request(target.Authority, kind, outcome.Result, outcome.Bytes);
        logger.RegistryRequest(context.Request.Method, target.Authority, repository, kind, reference, outcome.Result.Label(),
            context.Response.StatusCode, outcome.Bytes, (long)Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static async Task<RegistryOutcome> RejectAsync(HttpContext context, InvalidRoute invalid)
    {
        RegistryResponses.SetResult(context.Response, RequestResult.Rejected);
        await RegistryError.WriteAsync(context.Response, invalid.ErrorCode, invalid.Message, context.RequestAborted);
        return new(RequestResult.Rejected, 0);
    }

    private async Task<RegistryOutcome> ForwardAsync(HttpContext context, InterceptTarget target, string rawTarget)
    {
        if (!Hosting.UpstreamTarget.TryForIntercepted(target.Authority, rawTarget, out var upstream))
        {
            await HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status400BadRequest, "MitmCache: invalid request target");
            return new(RequestResult.Rejected, 0);
        }

        await forwarder.ForwardAsync(context, upstream);
        return new(RequestResult.Forwarded, 0);
    }
}

/// <summary>What a registry request came to, for metrics and the request log.</summary>
internal readonly record struct RegistryOutcome(RequestResult Result, long Bytes);
