using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using MitmCache.Registry;

namespace MitmCache.Upstream;

/// <summary>
/// A child's memory of the token requests it sent through its parents, so that each parent sees the client's
/// credential itself (docs/cluster.md, "Private images across the tier").
/// <para>A client's token request goes to the parent that owns its repository, and the token comes back through it;
/// its blobs go to each blob's owner, another parent, which never saw the credential. Such a parent could only ever
/// hold a grant for the short-lived token, and offline it cannot read a local token another parent minted. So, for a
/// request carrying a token this child got for a credential from parent A and bound for parent B, the child sends B
/// the same token request (the same URL, credential and body) and sends the request with the token B answered:
/// B ties it to the credential and keeps its own grant, and offline mints its own local token only if that grant is
/// live. Nothing is shared between parents: each decides on its own grants, as for any client.</para>
/// <para>Held in memory only, keyed by a SHA-256 of the token, until the token expires (an hour at most): the token
/// request, with its credential. A token request without any credential is not kept (its token proves only what is
/// public, which every parent finds out for itself: <see cref="Registry.VisibilityProbe"/>). Nothing here is logged.</para>
/// </summary>
internal sealed class TierTokens(TimeProvider time)
{
    private const int MaxEntries = 10_000;
    private static readonly TimeSpan s_maxLifetime = TimeSpan.FromHours(1);
    private static readonly TimeSpan s_refusalKept = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<string, Recipe> _recipes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(int Parent, string Token), Exchange> _exchanged = new();

    /// <summary>A token request as sent, and the parent that answered it.</summary>
    internal sealed record Recipe(HttpMethod Method, Uri Uri, Version Version, KeyValuePair<string, string[]>[] Headers, byte[]? Body, string? ContentType,
        IReadOnlyList<string> Registries, int Issuer, DateTimeOffset Expires);

    private sealed record Exchange(Task<string?> Token, DateTimeOffset Expires);

    /// <summary>True for a token request that carries a credential (an Authorization header, or a body: an OAuth form).</summary>
    public static bool CarriesCredential(HttpRequestMessage request) =>
        request.Headers.Authorization is not null || request.Content is not null;

    /// <summary>
    /// Parent <paramref name="issuer"/> answered the token request <paramref name="request"/> with 200: its body is read
    /// (to the token cap) and its tokens remembered with the request. Returns the response with its body in memory.
    /// </summary>
    public async Task<HttpResponseMessage> RememberAsync(HttpRequestMessage request, IReadOnlyList<string> registries, int issuer, HttpResponseMessage response,
        CancellationToken cancellationToken)
    {
        var bytes = await BoundedContent.ReadAsync(response.Content, BoundedContent.MaxTokenBytes, cancellationToken);
        if (bytes is null)
        {
            response.Dispose();
            throw new HttpRequestException($"the token answer through parent {issuer + 1} is larger than {BoundedContent.Describe(BoundedContent.MaxTokenBytes)}");
        }

        var content = new ByteArrayContent(bytes);
        foreach (var (name, values) in response.Content.Headers)
        {
            if (!name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                content.Headers.TryAddWithoutValidation(name, values);
            }
        }

        response.Content.Dispose();
        response.Content = content;

        var body = request.Content is null ? null : await request.Content.ReadAsByteArrayAsync(cancellationToken);
        var headers = request.Headers.Where(h => !h.Key.Equals("Via", StringComparison.OrdinalIgnoreCase)).Select(h => KeyValuePair.Create(h.Key, h.Value.ToArray())).ToArray();
        var now = time.GetUtcNow();
        Prune(now);
        foreach (var (token, lifetime) in TokenEndpoint.TokensIn(bytes))
        {
            var expires = now + (lifetime > s_maxLifetime ? s_maxLifetime : lifetime);
            _recipes[Hash(token)] = new Recipe(request.Method, request.RequestUri!, request.Version, headers, body, request.Content?.Headers.ContentType?.ToString(),
                registries, issuer, expires);
        }

        return response;
    }

    /// <summary>The token request behind a bearer token, while it lasts; null for any other credential.</summary>
    public Recipe? Find(string? authorization, out string token)
    {
        token = AccessTokens.BearerToken(authorization) ?? "";
        return token.Length > 0 && _recipes.TryGetValue(Hash(token), out var recipe) && recipe.Expires > time.GetUtcNow() ? recipe : null;
    }

    /// <summary>
    /// The token parent <paramref name="parent"/> gives for the request behind <paramref name="token"/>: one exchange per
    /// parent and token, shared by every request that needs it; null when that parent would give none (kept for 30 s).
    /// </summary>
    public Task<string?> ExchangeAsync(int parent, string token, Recipe recipe, Func<Task<(string? Token, TimeSpan Lifetime)>> ask)
    {
        var key = (parent, Hash(token));
        var now = time.GetUtcNow();
        while (true)
        {
            if (_exchanged.TryGetValue(key, out var known) && (known.Expires > now || !known.Token.IsCompleted))
            {
                return known.Token;
            }

            var answer = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
            var mine = new Exchange(answer.Task, recipe.Expires);
            if (known is null ? !_exchanged.TryAdd(key, mine) : !_exchanged.TryUpdate(key, mine, known))
            {
                continue;
            }

            _ = CompleteAsync(key, mine, answer, ask, recipe.Expires);
            return answer.Task;
        }
    }

    private async Task CompleteAsync((int, string) key, Exchange mine, TaskCompletionSource<string?> answer, Func<Task<(string? Token, TimeSpan Lifetime)>> ask,
        DateTimeOffset recipeExpires)
    {
        try
        {
            var (token, lifetime) = await ask();
            var now = time.GetUtcNow();
            var expires = token is null ? now + s_refusalKept : Min(recipeExpires, now + (lifetime * 0.9));
            _exchanged.TryUpdate(key, mine with { Expires = expires }, mine);
            answer.SetResult(token);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException or TimeoutException)
        {
            _exchanged.TryRemove(new KeyValuePair<(int, string), Exchange>(key, mine));
            answer.SetResult(null);
        }
    }

    private void Prune(DateTimeOffset now)
    {
        if (_recipes.Count + _exchanged.Count < MaxEntries)
        {
            return;
        }

        foreach (var (hash, recipe) in _recipes)
        {
            if (recipe.Expires <= now)
            {
                _recipes.TryRemove(hash, out _);
            }
        }

        foreach (var (key, exchange) in _exchanged)
        {
            if (exchange.Expires <= now && exchange.Token.IsCompleted)
            {
                _exchanged.TryRemove(key, out _);
            }
        }
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static string Hash(string token) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>The token request behind <paramref name="recipe"/> as a new message, the client's credential and body included.</summary>
    public static HttpRequestMessage Rebuild(Recipe recipe)
    {
        var request = new HttpRequestMessage(recipe.Method, recipe.Uri) { Version = recipe.Version, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
        foreach (var (name, values) in recipe.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, values);
        }

        if (recipe.Body is not null)
        {
            request.Content = new ByteArrayContent(recipe.Body);
            if (recipe.ContentType is not null)
            {
                request.Content.Headers.TryAddWithoutValidation("Content-Type", recipe.ContentType);
            }
        }

        request.Options.Set(ParentTier.TokenRegistries, recipe.Registries);
        return request;
    }
}
