using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace MitmCache.Upstream;

/// <summary>Which headers cross the proxy, in each direction (RFC 9110 section 7.6.1).</summary>
internal static class HeaderRules
{
    private static readonly HashSet<string> s_hopByHop = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
        "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Alt-Svc",
    };

    public static bool IsHopByHop(string name) => s_hopByHop.Contains(name) || name.StartsWith(':');

    /// <summary>Builds the upstream request: method, target, end-to-end headers and a streamed body.</summary>
    public static HttpRequestMessage CreateRequest(HttpRequest request, Uri target, bool forwardBody)
    {
        var message = new HttpRequestMessage(new HttpMethod(request.Method), target);
        if (target.Scheme == Uri.UriSchemeHttps)
        {
            message.Version = System.Net.HttpVersion.Version20;
            message.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }

        if (forwardBody)
        {
            message.Content = new ForwardedRequestBody(request.BodyReader);
        }

        // Headers the client named in Connection are hop-by-hop too (RFC 9110 section 7.6.1).
        var connectionTokens = request.Headers.Connection.ToString()
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in request.Headers)
        {
            if (IsHopByHop(name) || connectionTokens.Contains(name))
            {
                continue;
            }

            if (!message.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        return message;
    }

    /// <summary>
    /// Copies status and end-to-end headers of an upstream response to the client response, marked as relayed
    /// (<see cref="ParentTier.RelayedHeader"/>): a child of the cluster tier then knows a 5xx is the upstream's answer,
    /// not this proxy failing. An upstream's own copy of that header is dropped, so no registry can fake it.
    /// </summary>
    public static void CopyResponseHead(HttpResponseMessage upstream, HttpResponse response)
    {
        response.StatusCode = (int)upstream.StatusCode;
        foreach (var (name, values) in upstream.Headers)
        {
            if (!IsHopByHop(name) && !name.Equals(ParentTier.RelayedHeader, StringComparison.OrdinalIgnoreCase))
            {
                response.Headers[name] = new StringValues(values.ToArray());
            }
        }

        foreach (var (name, values) in upstream.Content.Headers)
        {
            response.Headers[name] = new StringValues(values.ToArray());
        }

        response.Headers[ParentTier.RelayedHeader] = "1";
    }
}
