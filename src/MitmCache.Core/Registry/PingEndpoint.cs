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
/// token request then answered by <see cref="TokenEndpoint"/>.
/// </summary>
internal sealed class PingEndpoint(RegistryUpstream upstream, AccessTokens tokens, RegistryChallenges challenges, ILogger<PingEndpoint> logger)
{
    /// <summary>
    /// Asks a registry's <c>/v2/</c> with no client behind it and remembers the answer: for a token request whose
    /// realm this proxy has not seen a challenge name yet (see <see cref="TokenEndpoint.RegistriesHeader"/>).
    /// </summary>
    public async Task LearnAsync(InterceptTarget target, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"https://{target.Authority}/v2/"))
        {
            Version = System.Net.HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: false, upstream.Timeout, cancellationToken);
            if (!RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                challenges.LearnFromPing(target.Authority, response);
            }
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
        {
            // Nothing learned: the token request is relayed as before.
        }
    }

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
                return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
            }

            reason = $"answered {(int)response.StatusCode}";
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            reason = HttpForwarder.Describe(ex).Reason;
        }

        var remembered = challenges.Find(registry);
        if (remembered is null)
        {
            await HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status502BadGateway, $"MitmCache: upstream {registry}: {reason}");
            return new("error", 0);
        }

        logger.ServingStale(registry, "", "/v2/", reason);
        RegistryResponses.SetResult(context.Response, "stale");
        if (remembered.Redirect is not null)
        {
            context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
            context.Response.Headers.Location = remembered.Redirect;
            return new("stale", 0);
        }

        if (remembered.WwwAuthenticate is null || tokens.FindLocal(context.Request.Headers.Authorization)?.IsFor(registry) == true)
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{}");
            return new("stale", 2);
        }

        context.Response.Headers.WWWAuthenticate = remembered.WwwAuthenticate;
        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized, "authentication required", context.RequestAborted);
        return new("stale", 0);
    }
}
