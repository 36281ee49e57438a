using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace MitmCache.Registry;

/// <summary>
/// A token MitmCache issued itself while a token host was unreachable: anonymous, or for the credential
/// whose grant key is <see cref="CredentialKey"/>; good only at the <see cref="Registries"/> whose own
/// challenge named the realm it was asked from.
/// </summary>
internal sealed record LocalToken(IReadOnlyList<ScopeEntry> Scopes, string? CredentialKey, IReadOnlyList<string> Registries, DateTimeOffset Expires)
{
    public bool Anonymous => CredentialKey is null;

    public bool IsFor(string registry) => Registries.Contains(registry, StringComparer.OrdinalIgnoreCase);

    public bool AllowsPull(string repository) =>
        Scopes.Any(s => s.Type == "repository" && s.Name == repository && (s.Actions.Contains("pull") || s.Actions.Contains("*")));
}

/// <summary>
/// Bearer tokens the proxy knows about, held in memory only, keyed by a SHA-256 of the token:
/// upstream tokens that were issued to a request carrying no credential at all (they prove a repository public),
/// and proxy-local tokens minted while upstream was down (only MitmCache accepts them; they are
/// never sent upstream).
/// </summary>
internal sealed class AccessTokens(TimeProvider time)
{
    public const string LocalPrefix = "mitmcache.";
    private const int MaxEntries = 100_000;

    private readonly ConcurrentDictionary<string, DateTimeOffset> _anonymous = new();
    private readonly ConcurrentDictionary<string, LocalToken> _local = new();

    /// <summary>Remembers a token an upstream token host issued to a request without credentials.</summary>
    public void RememberAnonymous(string token, TimeSpan lifetime)
    {
        Prune(_anonymous, e => e);
        _anonymous[Hash(token)] = time.GetUtcNow() + Clamp(lifetime);
    }

    public string MintLocal(IReadOnlyList<ScopeEntry> scopes, string? credentialKey, IReadOnlyList<string> registries, TimeSpan lifetime)
    {
        Prune(_local, e => e.Expires);
        var token = LocalPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        _local[Hash(token)] = new LocalToken(scopes, credentialKey, registries, time.GetUtcNow() + Clamp(lifetime));
        return token;
    }

    /// <summary>True when a request carries a Bearer token known to be anonymous (not merely no credential).</summary>
    public bool IsAnonymousToken(string? authorization) => BearerToken(authorization) is not null && IsAnonymous(authorization);

    /// <summary>True when a request carries no credential, or a Bearer token known to be anonymous.</summary>
    public bool IsAnonymous(string? authorization)
    {
        if (string.IsNullOrEmpty(authorization))
        {
            return true;
        }

        var token = BearerToken(authorization);
        if (token is null)
        {
            return false;
        }

        if (token.StartsWith(LocalPrefix, StringComparison.Ordinal))
        {
            return FindLocal(authorization) is { Anonymous: true };
        }

        return _anonymous.TryGetValue(Hash(token), out var expires) && expires > time.GetUtcNow();
    }

    /// <summary>A proxy-local token that is valid now, or null.</summary>
    public LocalToken? FindLocal(string? authorization)
    {
        var token = BearerToken(authorization);
        return token is not null && token.StartsWith(LocalPrefix, StringComparison.Ordinal)
            && _local.TryGetValue(Hash(token), out var local) && local.Expires > time.GetUtcNow()
            ? local
            : null;
    }

    public static bool IsLocal(string? authorization) =>
        BearerToken(authorization)?.StartsWith(LocalPrefix, StringComparison.Ordinal) == true;

    public static string? BearerToken(string? authorization) =>
        authorization is not null && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
            ? authorization[7..].Trim()
            : null;

    private static TimeSpan Clamp(TimeSpan lifetime) =>
        lifetime <= TimeSpan.Zero ? TimeSpan.FromMinutes(5) : lifetime > TimeSpan.FromDays(1) ? TimeSpan.FromDays(1) : lifetime;

    private void Prune<T>(ConcurrentDictionary<string, T> map, Func<T, DateTimeOffset> expiry)
    {
        if (map.Count < MaxEntries)
        {
            return;
        }

        var now = time.GetUtcNow();
        foreach (var (key, value) in map)
        {
            if (expiry(value) <= now)
            {
                map.TryRemove(key, out _);
            }
        }
    }

    private static string Hash(string token) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
