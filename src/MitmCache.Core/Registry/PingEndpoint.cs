using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// <c>GET /v2/</c>: asked upstream and relayed; its 401 challenge, its openness or its redirect is
/// remembered per registry (<see cref="RegistryChallenges"/>). When upstream is down, the remembered
/// answer is given, so a fresh client can start the token dance against a dead registry, with the
/// token request then answered by <see cref="TokenEndpoint"/>. With <c>--blob-store</c>, a registry this instance never
/// saw is answered from the ping answer another parent shared in the bucket.
/// </summary>
internal sealed class PingEndpoint(RegistryUpstream upstream, AccessTokens tokens, RegistryChallenges challenges, ILogger<PingEndpoint> logger)
{
    public async Task<RegistryOutcome> HandleAsync(HttpContext context, InterceptTarget target)
    {
        var registry = target.Authority;
        using var request = upstream.CreateRequest(HttpMethod.Get, target, "/v2/", context.Request);
        string reason;
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: false, upstream.Timeout, context.RequestAborted);
            if (!RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                challenges.LearnFromPing(registry, response);
                return new(RequestResult.Forwarded, await RegistryResponses.RelayAsync(context, response, RequestResult.Forwarded));
            }

            reason = $"answered {(int)response.StatusCode}";
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            reason = HttpForwarder.Describe(ex).Reason;
        }

        var remembered = await challenges.FindOrFetchAsync(registry, context.RequestAborted);
        if (remembered is null)
        {
            await HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status502BadGateway, $"MitmCache: upstream {registry}: {reason}");
            return new(RequestResult.Error, 0);
        }

        logger.ServingStale(registry, "", "/v2/", reason);
        RegistryResponses.SetResult(context.Response, RequestResult.Stale);
        if (remembered.Redirect is not null)
        {
            context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
            context.Response.Headers.Location = remembered.Redirect;
            return new(RequestResult.Stale, 0);
        }

        if (remembered.WwwAuthenticate is null || tokens.FindLocal(context.Request.Headers.Authorization)?.IsFor(registry) == true)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{}");
            return new(RequestResult.Stale, 2);
        }

        context.Response.Headers.WWWAuthenticate = remembered.WwwAuthenticate;
        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized, "authentication required", context.RequestAborted);
        return new(RequestResult.Stale, 0);
    }
}
