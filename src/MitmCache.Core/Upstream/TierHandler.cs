using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
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
/// <para>A blob's body that breaks or stalls after its head came from a parent goes on from the next route with a
/// <c>Range</c> from the byte reached (<see cref="ResumingStream"/>): the caller reads one unbroken body, and the fill
/// that hashes it checks the whole blob.</para>
/// <para>Requests to parents carry <c>Via</c> (the hops before and this proxy's name) and the client's
/// <c>Authorization</c> as it came, a parent-minted local token included, but for a token this child got for a
/// credential through another parent, which goes as the token this parent gives for the same token request
/// (<see cref="TierTokens"/>); a direct request drops a local token, which no registry knows.</para>
/// </summary>
internal sealed class TierHandler : HttpMessageHandler
{
    private readonly ParentTier _tier;
    private readonly UpstreamHealth? _health;
    private readonly HttpMessageInvoker[] _parents;
    private readonly HttpMessageInvoker _direct;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(int Parent, string Registry), byte> _primed = new();
    private readonly TierTokens _tokens = new(TimeProvider.System);

    public TierHandler(ParentTier tier, UpstreamHealth? health, Func<UpstreamRoute, HttpMessageHandler> createPool)
    {
        _tier = tier;
        _health = health;
        _parents = [.. Enumerable.Range(0, tier.Parents.Count).Select(i => new HttpMessageInvoker(createPool(new UpstreamRoute(i)), disposeHandler: true))];
        _direct = new HttpMessageInvoker(createPool(UpstreamRoute.Direct), disposeHandler: true);
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var key = ParentTier.KeyOf(request);
        var routes = _tier.Routes(key);
        var failures = _tier.DownParents().ToList(); // skipped without a try: named if nothing else works
        for (var i = 0; i < routes.Count; i++)
        {
            var route = routes[i];
            var attempt = Copy(request, route, ParentTier.ArrivedVia.Value); // not disposed: that would dispose the content it shares
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
            await PrimeAsync(request, route, cancellationToken);
            await ExchangeTokenAsync(attempt, route, ParentTier.ArrivedVia.Value);
            var counts = _tier.Counts[route.Parent];
            counts.Request();
            using var hop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, state.UpToken);
            try
            {
                var send = _parents[route.Parent].SendAsync(attempt, hop.Token);
                var response = _health is null ? await send : await _health.WatchAsync(state, send);
                if ((int)response.StatusCode < 500 || response.Headers.Contains(ParentTier.RelayedHeader) || last)
                {
                    _tier.ReportSuccess(route.Parent);
                    if (response.StatusCode == HttpStatusCode.OK && request.Options.TryGetValue(ParentTier.TokenRegistries, out var registries)
                        && TierTokens.CarriesCredential(request))
                    {
                        return await _tokens.RememberAsync(request, registries, route.Parent, response, cancellationToken);
                    }

                    return Resumable(request, key, response, [.. routes.Skip(i)]);
                }

                counts.Failure();

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
                counts.Failure();
                var reason = HttpForwarder.Describe(ex).Reason;
                failures.Add($"parent {state.Authority}: {reason}");
                if (ex.InnerException is not UpstreamConnectException { Error: ConnectError.ParentProxyRefused or ConnectError.Denied })
                {
                    _tier.ReportFailure(route.Parent, reason, network: true);
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && state.IsDown)
            {
                counts.Failure();
                failures.Add($"parent {state.Authority} went down ({state.Reason})");
                if (request.Content is not null)
                {
                    throw;
                }
            }
        }

        throw new HttpRequestException(HttpRequestError.ConnectionError, null, _tier.NoRoute(request.RequestUri!.Authority, failures));
    }

    /// <summary>
    /// Before a token request goes to a parent for the first time for a registry: that registry's <c>/v2/</c> ping,
    /// through the same parent, which learns the realm from the registry's challenge (or remembers it, offline) and so
    /// answers the token request as a token request: it ties the token to the credential, which is what lets the
    /// credential pull offline from it later. Once per parent and registry; a failed ping is not remembered.
    /// </summary>
    private async Task PrimeAsync(HttpRequestMessage request, UpstreamRoute route, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(ParentTier.TokenRegistries, out var registries))
        {
            return;
        }

        foreach (var registry in registries)
        {
            if (_primed.ContainsKey((route.Parent, registry)))
            {
                continue;
            }

            using var ping = Copy(new HttpRequestMessage(HttpMethod.Get, new Uri($"https://{registry}/v2/")) { Version = request.Version, VersionPolicy = request.VersionPolicy },
                route, ParentTier.ArrivedVia.Value);
            try
            {
                using var answer = await _parents[route.Parent].SendAsync(ping, cancellationToken);
                if ((int)answer.StatusCode < 500)
                {
                    _primed.TryAdd((route.Parent, registry), 0);
                }
            }
            catch (HttpRequestException)
            {
                return; // the token request finds out for itself
            }
        }
    }

    /// <summary>
    /// A request bound for a parent with a token this child got through another parent for a credential: it goes with
    /// the token this parent gives for the same token request (<see cref="TierTokens"/>), so the parent sees the
    /// credential itself. Unchanged when there is no such token, or the parent gives none.
    /// </summary>
    private async Task ExchangeTokenAsync(HttpRequestMessage attempt, UpstreamRoute route, string? arrivedVia)
    {
        if (route.IsDirect || attempt.Options.TryGetValue(ParentTier.TokenRegistries, out _)
            || _tokens.Find(attempt.Headers.Authorization?.ToString(), out var token) is not { } recipe || recipe.Issuer == route.Parent)
        {
            return;
        }

        var exchanged = await _tokens.ExchangeAsync(route.Parent, token, recipe, async () =>
        {
            using var again = TierTokens.Rebuild(recipe);
            using var deadline = new CancellationTokenSource(_tier.UpstreamTimeout);
            await PrimeAsync(again, route, deadline.Token);
            using var attemptAgain = Copy(again, route, arrivedVia);
            using var answer = await _parents[route.Parent].SendAsync(attemptAgain, deadline.Token);
            if (answer.StatusCode != HttpStatusCode.OK
                || await BoundedContent.ReadAsync(answer.Content, BoundedContent.MaxTokenBytes, deadline.Token) is not { } body)
            {
                return (null, TimeSpan.Zero);
            }

            var issued = TokenEndpoint.TokensIn(body).FirstOrDefault();
            return (issued.Token, issued.Lifetime);
        });
        if (exchanged is not null)
        {
            attempt.Headers.Remove("Authorization");
            attempt.Headers.TryAddWithoutValidation("Authorization", "Bearer " + exchanged);
        }
    }

    /// <summary>
    /// A parent's answer to a GET with a body (2xx): its bytes are counted, and a whole blob (200 to a GET without a
    /// Range) can go on from the routes after this one (<paramref name="routes"/>, this one first) if it breaks.
    /// </summary>
    private HttpResponseMessage Resumable(HttpRequestMessage request, string? key, HttpResponseMessage response, UpstreamRoute[] routes)
    {
        if (request.Method != HttpMethod.Get || request.Content is not null || response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.PartialContent))
        {
            return response;
        }

        var blob = response.StatusCode == HttpStatusCode.OK && request.Headers.Range is null && key?.StartsWith("blob ", StringComparison.Ordinal) == true;
        var template = new HttpRequestMessage(request.Method, request.RequestUri) { Version = request.Version, VersionPolicy = request.VersionPolicy };
        foreach (var (name, values) in request.Headers)
        {
            template.Headers.TryAddWithoutValidation(name, values);
        }

        foreach (var option in request.Options)
        {
            ((IDictionary<string, object?>)template.Options)[option.Key] = option.Value;
        }

        var body = new ResumingStream(this, _tier, _health, template, ParentTier.ArrivedVia.Value, response, routes[0], blob ? routes[1..] : []);
        response.Content = new ResumableContent(response.Content, body);
        return response;
    }

    /// <summary>
    /// Asks <paramref name="route"/> for the rest of a blob whose body broke at <paramref name="offset"/>: a
    /// <c>Range</c> from there (with <c>If-Range</c> when the first answer had a strong ETag). A 206 must start at
    /// the offset and, when the size is known, end at its end; a 200 of the same size has the bytes before the
    /// offset skipped. Anything else is a failure of that route, returned as its reason.
    /// </summary>
    internal async Task<(ResumingStream.Leg? Leg, string Reason)> ResumeAsync(HttpRequestMessage template, string? arrivedVia, UpstreamRoute route,
        long offset, long? total, EntityTagHeaderValue? etag, CancellationToken cancellationToken)
    {
        var name = route.IsDirect ? "direct" : "parent " + _tier.States[route.Parent].Authority;
        if (!route.IsDirect && _tier.States[route.Parent].IsDown)
        {
            return (null, $"{name} is down");
        }

        var attempt = Copy(template, route, arrivedVia);
        await ExchangeTokenAsync(attempt, route, arrivedVia);
        attempt.Headers.Range = new RangeHeaderValue(offset, null);
        if (etag is { IsWeak: false })
        {
            attempt.Headers.IfRange = new RangeConditionHeaderValue(etag);
        }

        using var head = route.IsDirect
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken)
            : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _tier.States[route.Parent].UpToken);
        head.CancelAfter(_tier.UpstreamTimeout * 3); // as a blob's head is given (BlobEndpoint)
        HttpResponseMessage? response = null;
        try
        {
            if (route.IsDirect)
            {
                response = await _direct.SendAsync(attempt, head.Token);
            }
            else
            {
                var state = _tier.States[route.Parent];
                _tier.Counts[route.Parent].Request();
                var send = _parents[route.Parent].SendAsync(attempt, head.Token);
                response = _health is null ? await send : await _health.WatchAsync(state, send);
            }

            var range = response.Content.Headers.ContentRange;
            var length = response.Content.Headers.ContentLength;
            string? refused = response.StatusCode switch
            {
                HttpStatusCode.PartialContent when range?.From != offset || (total is { } size && (range.Length != size || range.To != size - 1)) =>
                    $"{name} answered 206 with Content-Range {range}, not bytes {offset}-/{total?.ToString(CultureInfo.InvariantCulture) ?? "*"}",
                HttpStatusCode.PartialContent => null,
                HttpStatusCode.OK when total is { } size && length is { } whole && whole != size =>
                    string.Create(CultureInfo.InvariantCulture, $"{name} answered 200 with {whole} bytes, not {size}"),
                HttpStatusCode.OK => null,
                _ => string.Create(CultureInfo.InvariantCulture, $"{name} answered {(int)response.StatusCode} to the Range"),
            };
            if (refused is not null)
            {
                Fail(route);
                response.Dispose();
                return (null, refused);
            }

            var body = await response.Content.ReadAsStreamAsync(head.Token);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                // It ignored the Range: the bytes before the offset are ours already.
                var skipped = await StreamCopier.CopyAsync(new LimitedStream(body, offset), Stream.Null, head.Token);
                if (skipped.Failure != CopyFailure.None || skipped.Bytes != offset)
                {
                    head.Token.ThrowIfCancellationRequested();
                    throw new IOException("the body ended before the offset", skipped.Error);
                }

                if (!route.IsDirect)
                {
                    _tier.Counts[route.Parent].Received(offset);
                }
            }

            return (new ResumingStream.Leg(route, response, body, route.IsDirect ? null : _tier.States[route.Parent]), "");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            response?.Dispose();
            Fail(route);
            var reason = HttpForwarder.Describe(ex).Reason;
            if (!route.IsDirect && ex is HttpRequestException { InnerException: not UpstreamConnectException { Error: ConnectError.ParentProxyRefused or ConnectError.Denied } })
            {
                _tier.ReportFailure(route.Parent, reason, network: true);
            }

            return (null, $"{name}: {reason}");
        }
    }

    private void Fail(UpstreamRoute route)
    {
        if (!route.IsDirect)
        {
            _tier.Counts[route.Parent].Failure();
        }
    }

    /// <summary>The request never left: the connection (to the parent, or its CONNECT) failed.</summary>
    private static bool NotSent(HttpRequestException ex) => ex.InnerException is UpstreamConnectException;

    /// <summary>
    /// A fresh message per attempt (one may be sent only once), sharing the content: it is read only by the attempt
    /// that gets a connection, and another is tried after that only for requests without one.
    /// </summary>
    private HttpRequestMessage Copy(HttpRequestMessage request, UpstreamRoute route, string? arrivedVia)
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
            copy.Headers.TryAddWithoutValidation("Via", _tier.ViaFor(arrivedVia));
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
