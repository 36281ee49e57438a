using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// Token requests to a realm a registry challenged with (e.g. <c>auth.docker.io/token</c>).
/// <para>A realm is honoured only for the registries whose own challenge named it (several may share
/// one); a challenge cannot claim a registry route, nor a repository path under another host's <c>/v2/</c>, so no registry can turn
/// another's manifests or blobs into token requests. This holds across restarts: <see cref="RegistryChallenges"/>
/// reads the realms back from each registry's remembered challenge, through the same rule.</para>
/// <para>Online they are relayed. A token issued to a request without any credential is remembered as
/// anonymous (it later proves a repository public); a token issued for any credential (a Basic header,
/// an OAuth password or refresh-token grant, any other secret: see <see cref="TokenCredential"/>) is tied
/// to that credential, so what the token proves is granted to the credential. A 401/403 drops the
/// credential's grants for the requested repositories. Token answers are read up to 1 MiB.</para>
/// <para>When the token host is down: a request without credentials gets a proxy-local anonymous token;
/// one with a credential gets a proxy-local token only if it holds a live grant (or the repository is
/// public) for every repository it asks for; anything else gets 401 (fail closed). Local tokens are
/// accepted only by MitmCache, and only at the registries that named the realm.</para>
/// </summary>
internal sealed class TokenEndpoint
{
    private const int MaxBodyBytes = 64 * 1024;
    private static readonly TimeSpan s_localLifetime = TimeSpan.FromMinutes(5);

    private readonly Lock _realmGate = new();
    private readonly Dictionary<string, string> _realmOf = new(StringComparer.OrdinalIgnoreCase); // registry → realm key
    private volatile Dictionary<string, string[]> _claimants = new(StringComparer.Ordinal); // realm key → registries
    private readonly RegistryUpstream _upstream;
    private readonly AccessTokens _tokens;
    private readonly AccessGrants _grants;
    private readonly TimeProvider _time;
    private readonly RepositoryVisibility _visibility;
    private readonly ILogger<TokenEndpoint> _logger;

    public TokenEndpoint(RegistryUpstream upstream, AccessTokens tokens, AccessGrants grants, RepositoryVisibility visibility, TimeProvider time, ILogger<TokenEndpoint> logger)
    {
        _upstream = upstream;
        _tokens = tokens;
        _grants = grants;
        _visibility = visibility;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// <paramref name="registry"/>'s own challenge names <paramref name="realm"/>. False, and nothing
    /// registered, when the realm is not honoured (see <see cref="IsHonoured"/>).
    /// </summary>
    public bool RegisterRealm(Uri realm, string registry)
    {
        if (!IsHonoured(realm, registry))
        {
            return false;
        }

        var key = Key(realm.Authority, realm.AbsolutePath);
        lock (_realmGate)
        {
            if (!_realmOf.TryGetValue(registry, out var known) || known != key)
            {
                _realmOf[registry] = key;
                _claimants = _realmOf.GroupBy(r => r.Value, StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => g.Select(r => r.Key).Order(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);
            }
        }

        return true;
    }

    /// <summary>The registries whose own challenge named this host and path as their token realm, if any.</summary>
    public IReadOnlyList<string>? RegistriesFor(InterceptTarget target, string path) =>
        _claimants.TryGetValue(Key(target.Authority, path), out var registries) ? registries : null;

    public async Task HandleAsync(HttpContext context, InterceptTarget target, string rawTarget, IReadOnlyList<string> registries)
    {
        var request = context.Request;
        var body = await ReadBodyAsync(request, context.RequestAborted);
        if (body is null)
        {
            context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
            return;
        }

        var credential = TokenCredential.Of(request, body);
        var scopes = Scopes(request, body);
        if (!Hosting.UpstreamTarget.TryForIntercepted(target.Authority, rawTarget, out var upstreamUri))
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }

        using var message = HeaderRules.CreateRequest(request, upstreamUri, forwardBody: false);
        message.Options.Set(ParentTier.TokenRegistries, registries); // a parent asked for it must know the realm first
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
                await RelayAsync(context, response, registries, credential, scopes);
                return;
            }

            reason = $"answered {(int)response.StatusCode}";
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            reason = HttpForwarder.Describe(ex).Reason;
        }

        await AnswerOfflineAsync(context, registries, credential, scopes, reason);
    }

    private async Task RelayAsync(HttpContext context, HttpResponseMessage response, IReadOnlyList<string> registries, string? credential, IReadOnlyList<ScopeEntry> scopes)
    {
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            // Refusals are recorded for every registry that shares the realm: a revocation is never missed.
            foreach (var registry in registries)
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
        }

        if (response.StatusCode != HttpStatusCode.OK)
        {
            await RegistryResponses.RelayAsync(context, response, RequestResult.Forwarded);
            return;
        }

        var bytes = await BoundedContent.ReadAsync(response.Content, BoundedContent.MaxTokenBytes, context.RequestAborted);
        if (bytes is null)
        {
            var limit = BoundedContent.Describe(BoundedContent.MaxTokenBytes);
            _logger.UpstreamBodyTooLarge(response.RequestMessage?.RequestUri?.Authority ?? "", "token response", limit);
            RegistryResponses.SetResult(context.Response, RequestResult.Error);
            await RegistryError.WriteAsync(context.Response, StatusCodes.Status502BadGateway, RegistryErrorCode.Unknown,
                $"the token server sent an answer larger than {limit} (the limit); it was not read further", context.RequestAborted);
            return;
        }

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

    /// <summary>
    /// The token host is down. containerd's OAuth POST and its GET fallback carry the same secret, which
    /// <see cref="TokenCredential"/> keys alike, so either gets the same answer.
    /// </summary>
    private async Task AnswerOfflineAsync(HttpContext context, IReadOnlyList<string> registries, string? credential, IReadOnlyList<ScopeEntry> scopes, string reason)
    {
        string? credentialKey = null;
        if (credential is not null)
        {
            var repositories = scopes.Where(s => s.Type == "repository").Select(s => s.Name).Distinct().ToList();
            var granted = repositories.Count > 0
                && repositories.All(name => registries.Any(registry => _visibility.IsPublic(registry, name) == true || _grants.IsGranted(credential, registry, name)));
            if (!granted)
            {
                _logger.OfflineTokenRefused(string.Join(", ", registries));
                context.Response.Headers.WWWAuthenticate = $"Basic realm=\"{registries[0]}\"";
                await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized,
                    "the registry is unreachable and these credentials hold no recent grant for the requested repositories", context.RequestAborted);
                return;
            }

            credentialKey = _grants.KeyOf(credential);
        }

        var token = _tokens.MintLocal(scopes, credentialKey, registries, s_localLifetime);
        _logger.LocalTokenIssued(string.Join(", ", registries), reason);
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

    private static IReadOnlyList<ScopeEntry> Scopes(HttpRequest request, byte[] body)
    {
        var values = request.Query["scope"].ToList();
        if (TokenCredential.Form(request, body).TryGetValue("scope", out var formScope))
        {
            values.AddRange(formScope.ToArray());
        }

        return WwwAuthenticate.ParseScopes(values);
    }

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

    /// <summary>The tokens of a token host's answer (<c>token</c>, <c>access_token</c>) with their lifetime; none for anything else.</summary>
    internal static IEnumerable<(string Token, TimeSpan Lifetime)> TokensIn(byte[] body)
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

    /// <summary>
    /// A realm is https, and never a path the proxy serves as a registry: not a ping, blob or manifest route
    /// on any host, and under another host's <c>/v2/</c> only a single segment (quay.io's <c>/v2/auth</c>,
    /// gcr.io's <c>/v2/token</c>; every repository API path has at least three). So no challenge can turn
    /// another registry's manifests, blobs, tag lists or uploads into token requests.
    /// </summary>
    internal static bool IsHonoured(Uri realm, string registry)
    {
        var path = realm.AbsolutePath;
        if (realm.Scheme != Uri.UriSchemeHttps || RegistryRoute.Parse(path) is PingRoute or BlobRoute or ManifestRoute)
        {
            return false;
        }

        var underV2 = path.StartsWith("/v2/", StringComparison.OrdinalIgnoreCase) || path.Equals("/v2", StringComparison.OrdinalIgnoreCase);
        return !underV2
            || string.Equals(realm.Authority, registry, StringComparison.OrdinalIgnoreCase)
            || (path.Length > 4 && path.IndexOf('/', 4) < 0);
    }

    /// <summary>Host names compare without case; paths exactly, as the registry's own routes do.</summary>
    private static string Key(string authority, string path) => authority.ToLowerInvariant() + path;
}
