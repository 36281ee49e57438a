using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// Token requests to a realm a registry challenged with (e.g. <c>auth.docker.io/token</c>). Online they
/// are relayed; a token issued to a request without credentials is remembered as anonymous, which later
/// proves a repository public. When the token host is down, an anonymous request gets a proxy-local
/// token that only MitmCache accepts; a request with credentials is refused (fail closed).
/// </summary>
internal sealed class TokenEndpoint
{
    private const int MaxTokenResponseBytes = 1 << 20;
    private static readonly TimeSpan s_localLifetime = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<string, string> _realms = new(StringComparer.OrdinalIgnoreCase);
    private readonly RegistryUpstream _upstream;
    private readonly AccessTokens _tokens;
    private readonly TimeProvider _time;
    private readonly ILogger<TokenEndpoint> _logger;

    public TokenEndpoint(RegistryUpstream upstream, AccessTokens tokens, BlobCache cache, TimeProvider time, ILogger<TokenEndpoint> logger)
    {
        _upstream = upstream;
        _tokens = tokens;
        _time = time;
        _logger = logger;
        foreach (var challenge in cache.Index.AllChallenges())
        {
            if (challenge.Realm is not null && Uri.TryCreate(challenge.Realm, UriKind.Absolute, out var realm))
            {
                RegisterRealm(realm, challenge.Id);
            }
        }
    }

    public void RegisterRealm(Uri realm, string registry) => _realms[Key(realm.Authority, realm.AbsolutePath)] = registry;

    /// <summary>The registry whose token realm this request is for, if any.</summary>
    public string? RegistryFor(InterceptTarget target, string path) =>
        _realms.TryGetValue(Key(target.Authority, path), out var registry) ? registry : null;

    public async Task HandleAsync(HttpContext context, InterceptTarget target, string rawTarget, string registry)
    {
        var request = context.Request;
        var anonymous = request.Headers.Authorization.Count == 0;
        var canHaveBody = context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody ?? false;
        using var message = HeaderRules.CreateRequest(request, new Uri($"https://{target.Authority}{rawTarget}"), canHaveBody);
        string reason;
        try
        {
            using var response = await _upstream.SendAsync(message, followRedirects: false, _upstream.Timeout, context.RequestAborted);
            if (!RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                if (!anonymous || response.StatusCode != System.Net.HttpStatusCode.OK || response.Content.Headers.ContentLength > MaxTokenResponseBytes)
                {
                    await RegistryResponses.RelayAsync(context, response, "forwarded");
                    return;
                }

                var body = await response.Content.ReadAsByteArrayAsync(context.RequestAborted);
                RememberAnonymousToken(body);
                HeaderRules.CopyResponseHead(response, context.Response);
                await context.Response.Body.WriteAsync(body, context.RequestAborted);
                return;
            }

            reason = $"answered {(int)response.StatusCode}";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TimeoutException)
        {
            reason = HttpForwarder.Describe(ex).Reason;
        }

        if (!HttpMethods.IsGet(request.Method))
        {
            // containerd tries OAuth POST first and falls back to GET on 404.
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        if (!anonymous)
        {
            _logger.OfflineRefused(registry, "(token)");
            context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{registry}\"";
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized,
                "the registry is unreachable and MitmCache cannot verify these credentials offline", context.RequestAborted);
            return;
        }

        var scopes = WwwAuthenticate.ParseScopes(request.Query["scope"]);
        var token = _tokens.MintLocal(scopes, anonymous: true, s_localLifetime);
        _logger.LocalTokenIssued(registry, reason);
        context.Response.Headers[RegistryResponses.ResultHeader] = "local-token";
        context.Response.ContentType = "application/json";
        await using var writer = new Utf8JsonWriter(context.Response.Body);
        writer.WriteStartObject();
        writer.WriteString("token", token);
        writer.WriteString("access_token", token);
        writer.WriteNumber("expires_in", (int)s_localLifetime.TotalSeconds);
        // RFC 3339 with 'Z': Go clients parse the raw JSON string and reject an escaped '+'.
        writer.WriteString("issued_at", _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
        writer.WriteEndObject();
    }

    private void RememberAnonymousToken(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            var lifetime = root.TryGetProperty("expires_in", out var expires) && expires.TryGetInt32(out var seconds)
                ? TimeSpan.FromSeconds(seconds)
                : TimeSpan.FromMinutes(1); // the spec's default
            foreach (var name in new[] { "token", "access_token" })
            {
                if (root.TryGetProperty(name, out var token) && token.ValueKind == JsonValueKind.String && token.GetString() is { Length: > 0 } value)
                {
                    _tokens.RememberAnonymous(value, lifetime);
                }
            }
        }
        catch (JsonException)
        {
            // Not a token response we understand: relay it, remember nothing.
        }
    }

    private static string Key(string authority, string path) => authority + path;
}
