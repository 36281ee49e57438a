using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Hosting;

/// <summary>
/// Where each HTTP request parsed by Kestrel goes:
/// intercepted + <c>/v2/</c> → registry cache; intercepted + other path → forwarded untouched;
/// plain absolute-form <c>http://</c> → forwarded (a classic proxy request); otherwise the proxy's own endpoints.
/// </summary>
internal sealed class RequestRouter(
    HttpForwarder forwarder,
    RegistryHandler registry,
    TokenEndpoint tokens,
    HostPolicy policy,
    ProxyAccess access,
    ProxyEndpoints endpoints,
    ProxySettings settings,
    ILogger<RequestRouter> logger)
{
    public Task HandleAsync(HttpContext context)
    {
        var items = context.Features.Get<IConnectionItemsFeature>()?.Items;
        if (items?.ContainsKey(ProxyEndpoints.MonitoringListener) == true)
        {
            return endpoints.HandleMonitoringAsync(context);
        }

        if (MethodNames.IsMiscased(context.Request.Method, out var standard))
        {
            return HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status400BadRequest,
                $"MitmCache: method names are case-sensitive: '{context.Request.Method}' is not {standard}");
        }

        // The cluster tier: a request that already passed through this proxy went round a loop of parents.
        var via = context.Request.Headers.Via.ToString();
        if (ParentTier.NamesHop(via, settings.InstanceName))
        {
            return HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status508LoopDetected,
                $"MitmCache: this request already passed through {settings.InstanceName} (Via: {via}): check the --upstream-proxy lists of the tier");
        }

        ParentTier.ArrivedVia.Value = via.Length > 0 ? via : null; // each request sets it: one left by the last on this connection is overwritten
        var rawTarget = context.Features.Get<IHttpRequestFeature>()!.RawTarget;
        var target = InterceptTarget.From(items);
        if (target is not null)
        {
            if (!rawTarget.StartsWith('/'))
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return Task.CompletedTask;
            }

            // Token realms first: quay.io (/v2/auth), gcr.io and Artifact Registry (/v2/token) put theirs under /v2/.
            var path = rawTarget.Split('?', 2)[0];
            if (path is not ("/v2/" or "/v2") && tokens.RegistriesFor(target, path) is { } tokenRegistries)
            {
                return tokens.HandleAsync(context, target, rawTarget, tokenRegistries);
            }

            if (path.StartsWith("/v2/", StringComparison.Ordinal) || path == "/v2")
            {
                return registry.HandleAsync(context, target, rawTarget);
            }

            return UpstreamTarget.TryForIntercepted(target.Authority, rawTarget, out var upstream)
                ? forwarder.ForwardAsync(context, upstream)
                : HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status400BadRequest, "MitmCache: invalid request target");
        }

        if (rawTarget.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return ForwardPlainAsync(context, rawTarget);
        }

        if (rawTarget.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            return HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status400BadRequest,
                "MitmCache: use CONNECT for https:// targets (set HTTPS_PROXY, not a https:// request URL)");
        }

        return endpoints.HandleAsync(context);
    }

    private Task ForwardPlainAsync(HttpContext context, string rawTarget)
    {
        if (!access.IsAuthorized(context.Request.Headers.ProxyAuthorization))
        {
            context.Response.StatusCode = StatusCodes.Status407ProxyAuthenticationRequired;
            context.Response.Headers.ProxyAuthenticate = "Basic realm=\"MitmCache\"";
            return Task.CompletedTask;
        }

        if (!UpstreamTarget.TryParseAbsolute(rawTarget, out var uri) || !string.IsNullOrEmpty(uri.UserInfo) || !HostPolicy.IsValidHostName(uri.IdnHost.Trim('[', ']').Replace(':', '-')))
        {
            return HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status400BadRequest, "MitmCache: invalid request URL");
        }

        // Plain HTTP may go to port 80 or any CONNECT-allowed port; the connector refuses denied addresses.
        var decision = uri.Port == 80 ? PolicyDecision.Tunnel : policy.Decide(uri.IdnHost.Trim('[', ']'), uri.Port, out _);
        if (decision == PolicyDecision.Refuse || (System.Net.IPAddress.TryParse(uri.IdnHost.Trim('[', ']'), out var ip) && HostPolicy.IsDeniedAddress(ip)))
        {
            logger.PlainRequestRefused(uri.Authority, "port or address not allowed");
            return HttpForwarder.WriteErrorAsync(context.Response, StatusCodes.Status403Forbidden, $"MitmCache: {uri.Authority} is not allowed");
        }

        return forwarder.ForwardAsync(context, uri);
    }
}
