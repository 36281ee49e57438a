using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Tunneling;

namespace MitmCache.Upstream;

/// <summary>
/// Talks to an upstream registry on a client's behalf: the client's own <c>Authorization</c> (never a
/// proxy-local token), its <c>Accept</c>, server-side redirects to CDNs that drop credentials when the
/// host changes, and a short timeout for the response head.
/// <para>A redirect is the upstream choosing where the proxy goes next, so it gets at least what a
/// client's CONNECT gets (https, an allowed port, no denied address) and, to another host, no internal
/// address either: those hops go through their own connection pool, whose connector refuses loopback and
/// private ranges unless the operator allowed them (<c>--connect-to</c>, <c>--allow-upstream-network</c>).</para>
/// <para>Every hop goes through <see cref="UpstreamHealth"/>: a host known down fails at once (an
/// <see cref="UpstreamConnectException"/>, as for a refused connection, so every caller answers from the cache at
/// once), and each hop's outcome tells the health of the host that answered it, or failed to.</para>
/// </summary>
internal sealed class RegistryUpstream(HttpMessageInvoker invoker, UpstreamConnector connector, UpstreamHealth health,
    ProxySettings settings, ILogger<RegistryUpstream> logger, AccessTokens? tokens = null) : IDisposable
{
    private const int MaxRedirects = 5;

    private HttpMessageInvoker _redirects = UpstreamHttp.CreateInvoker(connector, settings, health, UpstreamReach.Redirect);

    /// <summary>Hosts an upstream named (redirect targets, token realms): their own pool, under the CONNECT rules. Tests may play them.</summary>
    internal HttpMessageInvoker Redirects
    {
        init
        {
            _redirects.Dispose();
            _redirects = value;
        }
    }

    public TimeSpan Timeout => settings.UpstreamTimeout;

    /// <summary>
    /// The credential that goes upstream: the client's, unless it is ours; else a configured fallback. With parents,
    /// only a local token this proxy minted is ours: one a parent minted goes back to the parents (the tier's
    /// handler drops it on a direct request).
    /// </summary>
    public string? UpstreamAuthorization(InterceptTarget target, HttpRequest client)
    {
        var authorization = client.Headers.Authorization.ToString();
        if (authorization.Length > 0 && (!AccessTokens.IsLocal(authorization) || (connector.Tier.Enabled && tokens?.FindLocal(authorization) is null)))
        {
            return authorization;
        }

        return settings.RegistryCredentials.TryGetValue(target.Authority, out var credential)
            ? "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(credential))
            : null;
    }

    /// <param name="bulk">A blob body: ask for HTTP/1.1, which moves large bodies with far less CPU
    /// than HTTP/2's flow-controlled frames (measured: cold fills 0.19× → 0.27× of direct on loopback).</param>
    public HttpRequestMessage CreateRequest(HttpMethod method, InterceptTarget target, string pathAndQuery, HttpRequest client, string? accept = null, bool bulk = false)
    {
        var request = new HttpRequestMessage(method, new Uri($"https://{target.Authority}{pathAndQuery}"))
        {
            Version = bulk ? HttpVersion.Version11 : HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };

        if (UpstreamAuthorization(target, client) is { } authorization)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        var accepts = accept is null ? client.Headers.Accept.ToArray() : [accept];
        foreach (var value in accepts)
        {
            request.Headers.TryAddWithoutValidation("Accept", value);
        }

        if (client.Headers.UserAgent.Count > 0)
        {
            request.Headers.TryAddWithoutValidation("User-Agent", client.Headers.UserAgent.ToString());
        }

        return request;
    }

    /// <summary>
    /// Sends and, when asked, follows 301/302/303/307/308 (relative Locations too). The response head
    /// must arrive within <paramref name="timeout"/>; the body is the caller's to read.
    /// </summary>
    /// <exception cref="UpstreamConnectException">A host on the way is down (<see cref="ConnectError.Down"/>), or could not be connected to.</exception>
    /// <param name="hostFromUpstream">The request's own host came from an upstream's answer (a token realm the proxy asks on its
    /// own), not from a client: it is checked and connected to as a redirect target is.</param>
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, bool followRedirects, TimeSpan timeout, CancellationToken cancellationToken,
        bool hostFromUpstream = false)
    {
        if (hostFromUpstream && RefuseRedirect(request.RequestUri!) is { } refused)
        {
            throw new UpstreamConnectException(ConnectError.Denied, $"{request.RequestUri!.Authority}: {refused}");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var current = request;
        try
        {
            for (var hop = 0; ; hop++)
            {
                HttpResponseMessage response;
                try
                {
                    // Another host than the one the client named is the upstream's choice: the stricter pool.
                    var sameHost = !hostFromUpstream && string.Equals(current.RequestUri!.Authority, request.RequestUri!.Authority, StringComparison.OrdinalIgnoreCase);
                    response = await SendHopAsync(current, sameHost ? invoker : _redirects, sameHost ? UpstreamReach.Client : UpstreamReach.Redirect,
                        timeout, deadline.Token, cancellationToken);
                }
                catch (HttpRequestException ex) when (hop > 0 && ex.InnerException is UpstreamConnectException { Error: ConnectError.Denied } denied)
                {
                    logger.RedirectRefused($"{request.RequestUri!.Authority} redirected to {current.RequestUri!.Authority}: {denied.Message}");
                    throw;
                }

                if (!followRedirects || !IsRedirect(response.StatusCode) || response.Headers.Location is null)
                {
                    return response;
                }

                if (hop >= MaxRedirects)
                {
                    response.Dispose();
                    throw new HttpRequestException($"more than {MaxRedirects} redirects from {request.RequestUri!.Authority}");
                }

                var location = response.Headers.Location.IsAbsoluteUri
                    ? response.Headers.Location
                    : new Uri(current.RequestUri!, response.Headers.Location);
                response.Dispose();
                if (RefuseRedirect(location) is { } refusal)
                {
                    var reason = $"{request.RequestUri!.Authority} redirected to {location.GetLeftPart(UriPartial.Authority)}: {refusal}";
                    logger.RedirectRefused(reason);
                    throw new UpstreamConnectException(ConnectError.Denied, reason);
                }

                var next = Redirected(current, location);
                if (!ReferenceEquals(current, request))
                {
                    current.Dispose();
                }

                current = next;
            }
        }
        finally
        {
            if (!ReferenceEquals(current, request))
            {
                current.Dispose();
            }
        }
    }

    /// <summary>
    /// One request to one host, through its health: refused at once when the host is known down, given up at once
    /// when it goes down meanwhile, and its outcome (an answer, a fault, a failure to connect or to answer in time)
    /// recorded against that host, never against the one that redirected here.
    /// </summary>
    private async Task<HttpResponseMessage> SendHopAsync(HttpRequestMessage message, HttpMessageInvoker client, UpstreamReach reach, TimeSpan timeout,
        CancellationToken deadline, CancellationToken cancellationToken)
    {
        var host = health.Track(message.RequestUri!, reach);
        if (host.IsDown)
        {
            throw health.Unavailable(host);
        }

        using var hop = CancellationTokenSource.CreateLinkedTokenSource(deadline, host.UpToken);
        try
        {
            var response = await health.WatchAsync(host, client.SendAsync(message, hop.Token));
            health.ReportAnswer(host, response.StatusCode);
            return response;
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            if (host.IsDown)
            {
                throw health.Unavailable(host, ex); // it went down while we waited (another request, or our own check, found out)
            }

            if (deadline.IsCancellationRequested)
            {
                var noAnswer = string.Create(CultureInfo.InvariantCulture, $"no response from {host.Authority} within {timeout.TotalSeconds:0.#}s");
                health.ReportFailure(host, noAnswer, network: true);
                throw new TimeoutException(noAnswer, ex);
            }

            // The handler's ConnectTimeout (TCP and TLS): a cancellation with a TimeoutException inside.
            var failure = new UpstreamConnectException(ConnectError.Timeout, string.Create(CultureInfo.InvariantCulture,
                $"connecting to {host.Authority} timed out (--connect-timeout {settings.ConnectTimeout.TotalSeconds:0.###}s)"), ex);
            health.ReportFailure(host, failure.Message, network: true);
            throw failure;
        }
        catch (HttpRequestException ex) when (UpstreamHealth.IsOutage(ex))
        {
            health.ReportFailure(host, HttpForwarder.Describe(ex).Reason, network: true);
            throw;
        }
    }

    /// <summary>Why a redirect target is not followed, or null: what a client's CONNECT would be refused for.</summary>
    private string? RefuseRedirect(Uri location) =>
        location.Scheme != Uri.UriSchemeHttps ? $"only https redirects are followed, not {location.Scheme}"
        : location.UserInfo.Length > 0 ? "a redirect target may not carry credentials"
        : !settings.AllowedPorts.Contains(location.Port) ? $"port {location.Port} is not allowed (add --allow-port)"
        : null;

    public void Dispose() => _redirects.Dispose();

    private static HttpRequestMessage Redirected(HttpRequestMessage previous, Uri location)
    {
        var next = new HttpRequestMessage(previous.Method == HttpMethod.Head ? HttpMethod.Head : HttpMethod.Get, location)
        {
            Version = previous.Version,
            VersionPolicy = previous.VersionPolicy,
        };

        var sameHost = string.Equals(previous.RequestUri!.Authority, location.Authority, StringComparison.OrdinalIgnoreCase);
        foreach (var (name, values) in previous.Headers)
        {
            // Credentials never follow a redirect to another host: S3 and GCS signed URLs reject them,
            // and a CDN must not learn a registry credential.
            if (!sameHost && name.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            next.Headers.TryAddWithoutValidation(name, values);
        }

        return next;
    }

    public static bool IsRedirect(HttpStatusCode status) =>
        status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
            or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    /// <summary>An upstream that could not be reached or did not answer in time (connection, TLS, timeout).</summary>
    public static bool IsUnreachable(Exception ex) => ex is HttpRequestException or IOException or TimeoutException;

    /// <summary>Upstream answers that mean "serve stale if you can": 5xx and 429.</summary>
    public static bool IsUpstreamFault(HttpStatusCode status) => (int)status >= 500 || status == HttpStatusCode.TooManyRequests;

    public static string? MediaTypeOf(HttpResponseMessage response) => response.Content.Headers.ContentType?.MediaType;

    public static MediaTypeHeaderValue? ParseMediaType(string? value) =>
        MediaTypeHeaderValue.TryParse(value, out var parsed) ? parsed : null;
}
