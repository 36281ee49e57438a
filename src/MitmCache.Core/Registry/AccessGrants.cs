using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace MitmCache.Registry;

/// <summary>
/// Short-lived proof that a credential may read a repository, learned from upstream answering it with
/// 2xx. Keyed by an HMAC of the credential under a per-process secret: credentials are never held in
/// clear. Lets a private image's layers be served from cache without one upstream probe per layer.
/// </summary>
internal sealed class AccessGrants(TimeProvider time)
{
    private static readonly TimeSpan s_lifetime = TimeSpan.FromMinutes(5);
    private readonly byte[] _secret = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _grants = new();

    public void Grant(string? authorization, string registry, string repository)
    {
        if (string.IsNullOrEmpty(authorization))
        {
            return;
        }

        if (_grants.Count > 100_000)
        {
            var now = time.GetUtcNow();
            foreach (var (key, expires) in _grants)
            {
                if (expires <= now)
                {
                    _grants.TryRemove(key, out _);
                }
            }
        }

        _grants[Key(authorization, registry, repository)] = time.GetUtcNow() + s_lifetime;
    }

    public bool IsGranted(string? authorization, string registry, string repository) =>
        !string.IsNullOrEmpty(authorization)
        && _grants.TryGetValue(Key(authorization, registry, repository), out var expires)
        && expires > time.GetUtcNow();

    public void Revoke(string? authorization, string registry, string repository)
    {
        if (!string.IsNullOrEmpty(authorization))
        {
            _grants.TryRemove(Key(authorization, registry, repository), out _);
        }
    }

    private string Key(string authorization, string registry, string repository) =>
        Convert.ToHexString(HMACSHA256.HashData(_secret, Encoding.UTF8.GetBytes($"{authorization}\n{registry}\n{repository}")));
}
