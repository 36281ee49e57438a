using System.Net;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// What each registry answers a client without credentials, remembered per registry: its challenge
/// (or that it has none), so a fresh client can start the token dance while the registry is down,
/// and its token realm, so token requests reach <see cref="TokenEndpoint"/> (which learns from them
/// which tokens are anonymous, and answers them offline). Learned from the <c>/v2/</c> ping and from
/// the 401 of any blob or manifest request: containerd never pings, it starts with the manifest.
/// </summary>
internal sealed class RegistryChallenges(BlobCache cache, TokenEndpoint tokens, ILogger<RegistryChallenges> logger)
{
    private static readonly TimeSpan s_refresh = TimeSpan.FromHours(1);

    /// <summary>
    /// The answer to <c>GET /v2/</c>: a 401 with its challenge, a 200 (an open registry), or a
    /// redirect to the registry that really answers (the client follows it, through us, and that
    /// registry's own ping is remembered in turn).
    /// </summary>
    public void LearnFromPing(string registry, HttpResponseMessage response)
    {
        if (response.StatusCode == HttpStatusCode.OK)
        {
            Remember(registry, cache.Index.FindChallenge(registry), challenge: null, bearer: null);
        }
        else if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            var challenge = HeaderOf(response);
            Remember(registry, cache.Index.FindChallenge(registry), challenge, WwwAuthenticate.TryParseBearer(challenge, out var bearer) ? bearer : null);
        }
        else if (RegistryUpstream.IsRedirect(response.StatusCode) && response.Headers.Location is { } location
            && response.RequestMessage?.RequestUri is { } asked)
        {
            var target = location.IsAbsoluteUri ? location : new Uri(asked, location);
            if (target.Scheme == Uri.UriSchemeHttps)
            {
                Remember(registry, cache.Index.FindChallenge(registry), challenge: null, bearer: null, target.ToString());
            }
        }
    }

    /// <summary>
    /// A 401 to a blob or manifest request. Its challenge names the request's scope (and perhaps an
    /// error); what is kept is the registry's part, as its ping would send it. A registry already
    /// known with the same realm is left as it is.
    /// </summary>
    public void LearnFromRefusal(string registry, HttpResponseMessage response)
    {
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return;
        }

        var header = HeaderOf(response);
        if (!WwwAuthenticate.TryParseBearer(header, out var bearer))
        {
            return; // Basic and other schemes need no realm; the ping remembers them
        }

        var known = cache.Index.FindChallenge(registry);
        if (known?.Realm == bearer.Realm.ToString())
        {
            return;
        }

        var challenge = bearer.Service is null
            ? $"Bearer realm=\"{bearer.Realm}\""
            : $"Bearer realm=\"{bearer.Realm}\",service=\"{bearer.Service}\"";
        Remember(registry, known, challenge, bearer);
    }

    /// <summary>Keeps the registry's answer; its realm only if <see cref="TokenEndpoint.RegisterRealm"/> honours it.</summary>
    private void Remember(string registry, ChallengeRecord? existing, string? challenge, BearerChallenge? bearer, string? redirect = null)
    {
        var realm = bearer is not null && tokens.RegisterRealm(bearer.Realm, registry) ? bearer.Realm.ToString() : null;
        if (existing is null || existing.WwwAuthenticate != challenge || existing.Redirect != redirect || existing.SeenAt < cache.Now - s_refresh)
        {
            if (bearer is not null && realm is null)
            {
                logger.RealmIgnored(bearer.Realm.ToString(), registry);
            }

            cache.Index.PutChallenge(new ChallengeRecord
            {
                Id = registry, WwwAuthenticate = challenge, Realm = realm, Redirect = redirect, SeenAt = cache.Now,
            });
        }
    }

    private static string HeaderOf(HttpResponseMessage response) =>
        string.Join(", ", response.Headers.WwwAuthenticate.Select(h => h.ToString()));
}
