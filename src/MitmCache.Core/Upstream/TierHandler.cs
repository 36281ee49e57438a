using System.Globalization;
using System.Net;
using MitmCache.Configuration;
using MitmCache.Registry;

namespace MitmCache.Upstream;

/// <summary>
/// The HTTP client's handler when the cluster tier is configured: one connection pool per route (a pooled
/// connection to a registry through parent A must never carry a request owned by parent B), and for each request
/// the routes of <see cref="ParentTier.Routes"/> in turn: the owner of its key, the next parents in rank, then
/// direct. A parent is left for the next route when it cannot be connected to, breaks the connection before its
/// answer, stalls (a fresh <c>/readyz</c> check fails while the request waits, <see cref="UpstreamHealth.WatchAsync"/>),
/// or answers a 5xx of its own. A 5xx it relays from the upstream (<see cref="ParentTier.RelayedHeader"/>, which a
/// parent strips from what upstreams send) is the registry's answer and is returned. A request with a body moves on
/// only when its body was not sent (a failure to connect).
/// <para>Requests to parents carry <c>Via</c> (the hops before and this proxy's name) and the client's
/// <c>Authorization</c> as it came, a parent-minted local token included; a direct request drops a local token,
/// which no registry knows.</para>
/// </summary>
internal sealed class TierHandler : HttpMessageHandler
{
    private readonly ParentTier _tier;
    private readonly UpstreamHealth? _health;
    private readonly HttpMessageInvoker[] _parents;
    private readonly HttpMessageInvoker _direct;

    public TierHandler(ParentTier tier, UpstreamHealth? health, Func<UpstreamRoute, HttpMessageHandler> createPool)
    {
        _tier = tier;
        _health = health;
        _parents = [.. Enumerable.Range(0, tier.Parents.Count).Select(i => new HttpMessageInvoker(createPool(new UpstreamRoute(i)), disposeHandler: true))];
        _direct = new HttpMessageInvoker(createPool(UpstreamRoute.Direct), disposeHandler: true);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var routes = _tier.Routes(ParentTier.KeyOf(request));
        var failures = _tier.DownParents().ToList(); // skipped without a try: named if nothing else works
        for (var i = 0; i < routes.Count; i++)
        {
            var route = routes[i];
            var attempt = Copy(request, route); // not disposed: that would dispose the content it shares
            if (route.IsDirect)
            {
                return await _direct.SendAsync(attempt, cancellationToken);
            }

            var state = _tier.States[route.Parent];
            if (state.IsDown)
            {
                failures.Add($"parent {state.Authority} is down ({state.Reason})");
                continue;
            }

            var last = i == routes.Count - 1;
            using var hop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, state.UpToken);
            try
            {
                var send = _parents[route.Parent].SendAsync(attempt, hop.Token);
                var response = _health is null ? await send : await _health.WatchAsync(state, send);
                if ((int)response.StatusCode < 500 || response.Headers.Contains(ParentTier.RelayedHeader) || last)
                {
                    _tier.ReportSuccess(route.Parent);
                    return response;
                }

                // The parent's own 5xx: it could not do this one. Without any X-MitmCache answer at all it is the
                // process itself failing (Kestrel's 500, a connection limit, a drain): it is down until a probe says not.
                var reason = string.Create(CultureInfo.InvariantCulture, $"answered {(int)response.StatusCode} itself");
                failures.Add($"parent {state.Authority} {reason}");
                if (!response.Headers.Contains(RegistryResponses.ResultHeader))
                {
                    _tier.ReportFailure(route.Parent, reason, network: false);
                }

                response.Dispose();
                if (request.Content is not null)
                {
                    throw _tier.NoRoute(request.RequestUri!.Authority, failures); // the body is gone: nothing to send again
                }
            }
            catch (HttpRequestException ex) when (!cancellationToken.IsCancellationRequested && (request.Content is null || NotSent(ex)))
            {
                var reason = HttpForwarder.Describe(ex).Reason;
                failures.Add($"parent {state.Authority}: {reason}");
                if (ex.InnerException is not UpstreamConnectException { Error: ConnectError.ParentProxyRefused or ConnectError.Denied })
                {
                    _tier.ReportFailure(route.Parent, reason, network: true);
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && state.IsDown)
            {
                failures.Add($"parent {state.Authority} went down ({state.Reason})");
                if (request.Content is not null)
                {
                    throw;
                }
            }
        }

        throw new HttpRequestException(HttpRequestError.ConnectionError, null, _tier.NoRoute(request.RequestUri!.Authority, failures));
    }

    /// <summary>The request never left: the connection (to the parent, or its CONNECT) failed.</summary>
    private static bool NotSent(HttpRequestException ex) => ex.InnerException is UpstreamConnectException;

    /// <summary>
    /// A fresh message per attempt (one may be sent only once), sharing the content: it is read only by the attempt
    /// that gets a connection, and another is tried after that only for requests without one.
    /// </summary>
    private HttpRequestMessage Copy(HttpRequestMessage request, UpstreamRoute route)
    {
        var copy = new HttpRequestMessage(request.Method, request.RequestUri)
        {
            Version = request.Version,
            VersionPolicy = request.VersionPolicy,
            Content = request.Content,
        };

        foreach (var (name, values) in request.Headers)
        {
            if (name.Equals("Via", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (route.IsDirect && name.Equals("Authorization", StringComparison.OrdinalIgnoreCase) && values.Any(AccessTokens.IsLocal))
            {
                continue; // a parent's local token means nothing to a registry: the request goes anonymous, as the client would
            }

            copy.Headers.TryAddWithoutValidation(name, values);
        }

        if (!route.IsDirect)
        {
            copy.Headers.TryAddWithoutValidation("Via", _tier.ViaFor(ParentTier.ArrivedVia.Value));
        }

        foreach (var option in request.Options)
        {
            ((IDictionary<string, object?>)copy.Options)[option.Key] = option.Value;
        }

        return copy;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            foreach (var parent in _parents)
            {
                parent.Dispose();
            }

            _direct.Dispose();
        }

        base.Dispose(disposing);
    }
}
