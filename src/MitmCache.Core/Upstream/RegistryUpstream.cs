using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.AspNetCore.Http;
using MitmCache.Configuration;
using MitmCache.Registry;
using MitmCache.Tunneling;

namespace MitmCache.Upstream;

/// <summary>
/// Talks to an upstream registry on a client's behalf: the client's own <c>Authorization</c> (never a
/// proxy-local token), its <c>Accept</c>, server-side redirects to CDNs that drop credentials when the
/// host changes, and a short timeout for the response head.
/// </summary>
internal sealed class RegistryUpstream(HttpMessageInvoker invoker, ProxySettings settings)
{
    private const int MaxRedirects = 5;

    public TimeSpan Timeout => settings.UpstreamTimeout;

    /// <summary>The credential that goes upstream: the client's, unless it is ours; else a configured fallback.</summary>
    public string? UpstreamAuthorization(InterceptTarget target, HttpRequest client)
    {
        var authorization = client.Headers.Authorization.ToString();
        if (authorization.Length > 0 && !AccessTokens.IsLocal(authorization))
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
    public async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, bool followRedirects, TimeSpan timeout, CancellationToken cancellationToken)
    {
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
                    response = await invoker.SendAsync(current, deadline.Token);
                }
                catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"no response from {current.RequestUri!.Authority} within {timeout.TotalSeconds:0.#}s", ex);
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
                if (location.Scheme is not ("https" or "http"))
                {
                    throw new HttpRequestException($"unsupported redirect to {location.Scheme}");
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
