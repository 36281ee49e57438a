using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// Token requests to a realm a registry challenged with (e.g. <c>auth.docker.io/token</c>).
/// <para>Online they are relayed. A token issued without credentials is remembered as anonymous
/// (it later proves a repository public); a token issued for a Basic credential (the Authorization
/// header, or containerd's OAuth form POST) is tied to that credential, so what the token proves is
/// granted to the credential. A 401/403 drops the credential's grants for the requested repositories.</para>
/// <para>When the token host is down: an anonymous request gets a proxy-local anonymous token; a Basic
/// credential gets a proxy-local token only if it holds a live grant for every repository it asks for;
/// anything else gets 401 (fail closed). Local tokens are accepted only by MitmCache.</para>
/// </summary>
internal sealed class TokenEndpoint
{
    private const int MaxBodyBytes = 64 * 1024;
    private const int MaxTokenResponseBytes = 1 << 20;
    private static readonly TimeSpan s_localLifetime = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<string, string> _realms = new(StringComparer.OrdinalIgnoreCase);
    private readonly RegistryUpstream _upstream;
    private readonly AccessTokens _tokens;
    private readonly AccessGrants _grants;
    private readonly TimeProvider _time;
    private readonly CacheIndex _index;
    private readonly ILogger<TokenEndpoint> _logger;

    public TokenEndpoint(RegistryUpstream upstream, AccessTokens tokens, AccessGrants grants, BlobCache cache, TimeProvider time, ILogger<TokenEndpoint> logger)
    {
        _upstream = upstream;
        _tokens = tokens;
        _grants = grants;
        _time = time;
        _index = cache.Index;
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
        var body = await ReadBodyAsync(request, context.RequestAborted);
        if (body is null)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return;
        }

        var credential = CredentialOf(request, body);
        var scopes = Scopes(request, body);
        if (!Hosting.UpstreamTarget.TryForIntercepted(target.Authority, rawTarget, out var upstreamUri))
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        using var message = HeaderRules.CreateRequest(request, upstreamUri, forwardBody: false);
        if (body.Length > 0 || HttpMethods.IsPost(request.Method))
        {
            message.Content = new ByteArrayContent(body);
            if (request.ContentType is { } contentType)
            {
                message.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }
        }

        string reason;
        try
        {
            using var response = await _upstream.SendAsync(message, followRedirects: false, _upstream.Timeout, context.RequestAborted);
            if (!RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                await RelayAsync(context, response, registry, credential, scopes);
                return;
            }

            reason = $"answered {(int)response.StatusCode}";
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            reason = HttpForwarder.Describe(ex).Reason;
        }

        await AnswerOfflineAsync(context, registry, credential, scopes, reason);
    }

    private async Task RelayAsync(HttpContext context, HttpResponseMessage response, string registry, string? credential, IReadOnlyList<ScopeEntry> scopes)
    {
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            foreach (var scope in scopes.Where(s => s.Type == "repository"))
            {
                if (credential is null)
                {
                    _grants.RecordAnonymousRefusal(registry, scope.Name);
                }
                else
                {
                    _grants.RecordRefusal(credential, registry, scope.Name);
                }
            }
        }

        if (response.StatusCode != HttpStatusCode.OK || response.Content.Headers.ContentLength > MaxTokenResponseBytes
            || (credential is not null && !credential.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)))
        {
            await RegistryResponses.RelayAsync(context, response, "forwarded");
            return;
        }

        var bytes = await response.Content.ReadAsByteArrayAsync(context.RequestAborted);
        foreach (var (token, lifetime) in TokensIn(bytes))
        {
            if (credential is null)
            {
                _tokens.RememberAnonymous(token, lifetime);
            }
            else
            {
                _grants.RecordTokenOwner(token, credential, lifetime);
            }
        }

        HeaderRules.CopyResponseHead(response, context.Response);
        await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
    }

    private async Task AnswerOfflineAsync(HttpContext context, string registry, string? credential, IReadOnlyList<ScopeEntry> scopes, string reason)
    {
        if (!HttpMethods.IsGet(context.Request.Method))
        {
            // containerd tries the OAuth POST first and falls back to GET on 404.
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        string? credentialKey = null;
        if (credential is not null)
        {
            var repositories = scopes.Where(s => s.Type == "repository").Select(s => s.Name).Distinct().ToList();
            var granted = credential.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)
                && repositories.Count > 0
                && repositories.All(name => _index.IsPublic(registry, name) == true || _grants.IsGranted(credential, registry, name));
            if (!granted)
            {
                _logger.OfflineTokenRefused(registry);
                context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{registry}\"";
                await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized,
                    "the registry is unreachable and these credentials hold no recent grant for the requested repositories", context.RequestAborted);
                return;
            }

            credentialKey = _grants.KeyOf(credential);
        }

        var token = _tokens.MintLocal(scopes, credentialKey, s_localLifetime);
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

    /// <summary>The Basic credential of a token request: its Authorization header, or an OAuth password grant.</summary>
    private static string? CredentialOf(HttpRequest request, byte[] body)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.Length > 0)
        {
            return authorization;
        }

        var form = Form(request, body);
        return form.TryGetValue("grant_type", out var grant) && grant == "password"
            && form.TryGetValue("username", out var user) && form.TryGetValue("password", out var password)
            ? "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"))
            : null;
    }

    private static IReadOnlyList<ScopeEntry> Scopes(HttpRequest request, byte[] body)
    {
        var values = request.Query["scope"].ToList();
        if (Form(request, body).TryGetValue("scope", out var formScope))
        {
            values.AddRange(formScope.ToArray());
        }

        return WwwAuthenticate.ParseScopes(values);
    }

    private static Dictionary<string, Microsoft.Extensions.Primitives.StringValues> Form(HttpRequest request, byte[] body) =>
        body.Length > 0 && request.ContentType?.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) == true
            ? QueryHelpers.ParseQuery(Encoding.UTF8.GetString(body))
            : [];

    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength is > MaxBodyBytes)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > MaxBodyBytes)
            {
                return null;
            }
        }

        return buffer.ToArray();
    }

    private static IEnumerable<(string Token, TimeSpan Lifetime)> TokensIn(byte[] body)
    {
        var found = new List<(string, TimeSpan)>();
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
                    found.Add((value, lifetime));
                }
            }
        }
        catch (JsonException)
        {
            // Not a token response we understand: relay it, remember nothing.
        }

        return found.Distinct();
    }

    private static string Key(string authority, string path) => authority + path;
}
