using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MitmCache.Certificates;

namespace MitmCache.Registry;

/// <summary>
/// Which credential may pull which repository, learned only from upstream saying yes. Grants are
/// keyed by an HMAC-SHA256 of the credential (the whole <c>Authorization</c> value) under a
/// per-install key kept beside the CA key (mode 0600), so neither the index nor the log ever holds a
/// credential. A Basic credential's grant lasts the offline window (7 days by default); a bearer
/// token's lasts until the token's own <c>exp</c>. A bearer token obtained from a token host with any
/// credential (a Basic header, an OAuth password or refresh-token grant, ...) is tied to it, so what the
/// token proves is granted to the credential too — that is what lets an imagePullSecret (or an identity
/// token) pull a private image while the registry is down.
/// Upstream's answers to clients without any credential also set a repository's visibility: public when one
/// succeeds, private again when an anonymous token is refused (a repository made private upstream
/// must not stay readable by everyone through the cache, nor lend "public" to content pushed since).
/// </summary>
internal sealed class AccessGrants
{
    private static readonly TimeSpan s_defaultTokenLifetime = TimeSpan.FromMinutes(5);

    private readonly byte[] _key;
    private readonly GrantRecords _records;
    private readonly RepositoryVisibility _visibility;
    private readonly AccessTokens _tokens;
    private readonly TimeProvider _time;
    private readonly TimeSpan _window;
    private readonly ConcurrentDictionary<string, (string OwnerKey, DateTimeOffset Expires)> _tokenOwners = new();

    // Refusals the index could not store (a full disk): a refused credential must lose its grant anyway.
    private readonly ConcurrentDictionary<string, bool> _unstoredRefusals = new();

    public AccessGrants(byte[] key, GrantRecords records, RepositoryVisibility visibility, AccessTokens tokens, TimeProvider time, TimeSpan window)
    {
        _key = key;
        _records = records;
        _visibility = visibility;
        _tokens = tokens;
        _time = time;
        _window = window;
    }

    /// <summary>Loads the per-install HMAC key, creating it (0600, atomically) on first use.</summary>
    public static byte[] LoadOrCreateKey(string caDirectory)
    {
        var path = new Configuration.CaFiles(caDirectory).GrantsKey;
        if (!File.Exists(path))
        {
            PrivateFile.EnsureDirectory(caDirectory);
            PrivateFile.WriteAtomically(path, RandomNumberGenerator.GetBytes(32), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        if (!OperatingSystem.IsWindows() && PrivateFile.CheckOwnerOnly(path) is { } problem)
        {
            throw new CertificateAuthorityException(problem);
        }

        var key = File.ReadAllBytes(path);
        return key.Length >= 32 ? key : throw new CertificateAuthorityException($"'{path}' is not a valid grant key; delete it to make a new one (all grants are then forgotten)");
    }

    public string KeyOf(string authorization) => Convert.ToHexString(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(authorization)));

    /// <summary>Upstream answered this credential (or an anonymous client) with success for the repository.</summary>
    public void RecordSuccess(string? authorization, string registry, string repository)
    {
        var now = _time.GetUtcNow();
        if (string.IsNullOrEmpty(authorization) || _tokens.IsAnonymous(authorization))
        {
            _visibility.SetVisibility(registry, repository, isPublic: true, now.UtcDateTime);
            return;
        }

        if (AccessTokens.BearerToken(authorization) is { } token)
        {
            Put(KeyOf(authorization), registry, repository, TokenExpiry(token) ?? now + s_defaultTokenLifetime);
            if (_tokenOwners.TryGetValue(KeyOf(authorization), out var owner) && owner.Expires > now)
            {
                Put(owner.OwnerKey, registry, repository, now + _window);
            }
        }
        else
        {
            Put(KeyOf(authorization), registry, repository, now + _window);
        }
    }

    /// <summary>
    /// Upstream refused this request (401/403) for the repository: its credential loses the grant at
    /// once, and an anonymous token refused makes the repository private. A refusal without any
    /// credential proves nothing: it is how a token-auth registry starts the token dance.
    /// </summary>
    public void RecordRefusal(string? authorization, string registry, string repository)
    {
        if (_tokens.IsAnonymousToken(authorization))
        {
            RecordAnonymousRefusal(registry, repository);
            return;
        }

        if (string.IsNullOrEmpty(authorization))
        {
            return;
        }

        var key = KeyOf(authorization);
        Revoke(key, registry, repository);
        if (_tokenOwners.TryGetValue(key, out var owner))
        {
            Revoke(owner.OwnerKey, registry, repository);
        }
    }

    private void Revoke(string credentialKey, string registry, string repository)
    {
        if (!_records.DeleteGrant(credentialKey, registry, repository))
        {
            _unstoredRefusals[GrantRecord.MakeId(credentialKey, registry, repository)] = true;
        }
    }

    /// <summary>The token host refused a request without credentials for the repository: it is private.</summary>
    public void RecordAnonymousRefusal(string registry, string repository) =>
        _visibility.SetVisibility(registry, repository, isPublic: false, _time.GetUtcNow().UtcDateTime);

    /// <summary>
    /// A token host issued <paramref name="token"/> to a request carrying <paramref name="credential"/> (a Basic
    /// header, an OAuth password or refresh-token grant, or any other secret; see <see cref="TokenCredential"/>).
    /// </summary>
    public void RecordTokenOwner(string token, string credential, TimeSpan lifetime)
    {
        var now = _time.GetUtcNow();
        if (_tokenOwners.Count > 100_000)
        {
            foreach (var (key, value) in _tokenOwners)
            {
                if (value.Expires <= now)
                {
                    _tokenOwners.TryRemove(key, out _);
                }
            }
        }

        _tokenOwners[KeyOf("Bearer " + token)] = (KeyOf(credential), now + lifetime);
    }

    /// <summary>True when this credential (or the credential a token was issued to) holds a live grant.</summary>
    public bool IsGranted(string? authorization, string registry, string repository)
    {
        if (string.IsNullOrEmpty(authorization))
        {
            return false;
        }

        var key = KeyOf(authorization);
        if (IsLive(key, registry, repository))
        {
            return true;
        }

        return _tokenOwners.TryGetValue(key, out var owner) && owner.Expires > _time.GetUtcNow() && IsLive(owner.OwnerKey, registry, repository);
    }

    public bool IsLive(string credentialKey, string registry, string repository) =>
        !_unstoredRefusals.ContainsKey(GrantRecord.MakeId(credentialKey, registry, repository))
        && _records.FindGrant(credentialKey, registry, repository) is { } grant && grant.Expires > _time.GetUtcNow().UtcDateTime;

    /// <summary><c>mitmcache auth revoke</c>: every credential's grants for a registry or repository.</summary>
    public int RevokeAll(string registry, string? repository) => _records.DeleteGrants(registry, repository);

    private void Put(string key, string registry, string repository, DateTimeOffset expires)
    {
        if (_records.PutGrant(new GrantRecord { CredentialKey = key, Registry = registry, Repository = repository, Expires = expires.UtcDateTime }))
        {
            _unstoredRefusals.TryRemove(GrantRecord.MakeId(key, registry, repository), out _);
        }
    }

    /// <summary>The <c>exp</c> claim of a JWT, read without verifying it (it only shortens a grant).</summary>
    internal static DateTimeOffset? TokenExpiry(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            return null;
        }

        try
        {
            var payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
            using var document = JsonDocument.Parse(Convert.FromBase64String(payload));
            return document.RootElement.TryGetProperty("exp", out var exp) && exp.TryGetInt64(out var seconds)
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
        }
        catch (Exception ex) when (ex is FormatException or JsonException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
