using System.Net;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// What each registry answers a client without credentials, remembered per registry: its challenge
/// (or that it has none), so a fresh client can start the token dance while the registry is down,
/// and its token realm, so token requests reach <see cref="TokenEndpoint"/> (which learns from them
/// which tokens are anonymous, and answers them offline). Learned from the <c>/v2/</c> ping and from
/// the 401 of any blob or manifest request: containerd never pings, it starts with the manifest.
/// Every read and write of the remembered challenges (<see cref="ChallengeRecords"/>) goes through here.
/// With <c>--blob-store</c>, a ping answer learned from upstream is shared through the bucket
/// (<see cref="ObjectStore.SharedPing"/>), and a parent that never saw the registry reads it back when it must
/// answer offline (<see cref="FindOrFetchAsync"/>), remembering it under the same rule as a learned one.
/// </summary>
internal sealed class RegistryChallenges
{
    private static readonly TimeSpan s_refresh = TimeSpan.FromHours(1);

    private readonly ChallengeRecords _records;
    private readonly TokenEndpoint _tokens;
    private readonly TimeProvider _time;
    private readonly ILogger<RegistryChallenges> _logger;
    private readonly ObjectStore.BucketWrites? _bucket;
    private readonly ObjectStore.BucketReads? _bucketReads;

    /// <summary>Hands the realms of the challenges remembered before a restart to <paramref name="tokens"/>, under the same rule as new ones.</summary>
    public RegistryChallenges(ChallengeRecords records, TokenEndpoint tokens, TimeProvider time, ILogger<RegistryChallenges> logger,
        ObjectStore.BucketWrites? bucket = null, ObjectStore.BucketReads? bucketReads = null)
    {
        _bucket = bucket;
        _bucketReads = bucketReads;
        _records = records;
        _tokens = tokens;
        _time = time;
        _logger = logger;
        foreach (var challenge in records.AllChallenges())
        {
            if (challenge.Realm is not null && Uri.TryCreate(challenge.Realm, UriKind.Absolute, out var realm))
            {
                tokens.RegisterRealm(realm, challenge.Id);
            }
        }
    }

    /// <summary>The registry's remembered answer to <c>GET /v2/</c>, if any: what a ping is answered with while it is down.</summary>
    public ChallengeRecord? Find(string registry) => _records.FindChallenge(registry);

    /// <summary>
    /// <see cref="Find"/>, or else (with <c>--blob-store</c>) the ping answer another parent shared in the bucket, remembered
    /// here as a learned one would be (its realm honoured only through <see cref="TokenEndpoint.RegisterRealm"/>). For
    /// answering offline only: null when neither has one, or the bucket cannot be read.
    /// </summary>
    public async Task<ChallengeRecord?> FindOrFetchAsync(string registry, CancellationToken ct)
    {
        if (Find(registry) is { } known)
        {
            return known;
        }

        if (_bucketReads is null || (await _bucketReads.Tier.GetPingAsync(registry, ct)).Value is not { } shared)
        {
            return null;
        }

        var bearer = shared.WwwAuthenticate is { } challenge && WwwAuthenticate.TryParseBearer(challenge, out var parsed) ? parsed : null;
        return Remember(registry, existing: null, shared.WwwAuthenticate, bearer, shared.Redirect, shared.SeenAt.UtcDateTime);
    }

    /// <summary>
    /// The registry's remembered challenge, scoped to one repository as the registry itself would send
    /// it, so a client asks the token host (or us, offline) for the right scope. Null when none is remembered (nor shared, see <see cref="FindOrFetchAsync"/>).
    /// </summary>
    public async Task<string?> ScopedChallengeAsync(string registry, string repository, CancellationToken ct) =>
        (await FindOrFetchAsync(registry, ct))?.WwwAuthenticate is not { } remembered ? null
        : WwwAuthenticate.TryParseBearer(remembered, out var bearer)
            ? $"Bearer realm=\"{bearer.Realm}\",service=\"{bearer.Service}\",scope=\"repository:{repository}:pull\""
            : remembered;

    /// <summary>
    /// The answer to <c>GET /v2/</c>: a 401 with its challenge, a 200 (an open registry), or a
    /// redirect to the registry that really answers (the client follows it, through us, and that
    /// registry's own ping is remembered in turn).
    /// </summary>
    public void LearnFromPing(string registry, HttpResponseMessage response)
    {
        if (response.StatusCode == HttpStatusCode.OK)
        {
            Remember(registry, Find(registry), challenge: null, bearer: null);
        }
        else if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            var challenge = HeaderOf(response);
            Remember(registry, Find(registry), challenge, WwwAuthenticate.TryParseBearer(challenge, out var bearer) ? bearer : null);
        }
        else if (RegistryUpstream.IsRedirect(response.StatusCode) && response.Headers.Location is { } location
            && response.RequestMessage?.RequestUri is { } asked)
        {
            var target = location.IsAbsoluteUri ? location : new Uri(asked, location);
            if (target.Scheme == Uri.UriSchemeHttps)
            {
                Remember(registry, Find(registry), challenge: null, bearer: null, target.ToString());
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

        var known = Find(registry);
        if (known?.Realm == bearer.Realm.ToString())
        {
            return;
        }

        var challenge = bearer.Service is null
            ? $"Bearer realm=\"{bearer.Realm}\""
            : $"Bearer realm=\"{bearer.Realm}\",service=\"{bearer.Service}\"";
        Remember(registry, known, challenge, bearer);
    }

    /// <summary>
    /// Keeps the registry's answer; its realm only if <see cref="TokenEndpoint.RegisterRealm"/> honours it. An answer
    /// upstream gave (no <paramref name="sharedAt"/>) is shared through the bucket; one read from the bucket is not written back.
    /// </summary>
    private ChallengeRecord Remember(string registry, ChallengeRecord? existing, string? challenge, BearerChallenge? bearer, string? redirect = null,
        DateTime? sharedAt = null)
    {
        var now = _time.GetUtcNow().UtcDateTime;
        var realm = bearer is not null && _tokens.RegisterRealm(bearer.Realm, registry) ? bearer.Realm.ToString() : null;
        if (existing is not null && existing.WwwAuthenticate == challenge && existing.Redirect == redirect && existing.SeenAt >= now - s_refresh)
        {
            return existing;
        }

        if (bearer is not null && realm is null)
        {
            _logger.RealmIgnored(bearer.Realm.ToString(), registry);
        }

        var record = new ChallengeRecord { Id = registry, WwwAuthenticate = challenge, Realm = realm, Redirect = redirect, SeenAt = sharedAt ?? now };
        _records.PutChallenge(record);
        if (sharedAt is null)
        {
            _bucket?.PingLearned(registry, challenge, redirect);
        }

        return record;
    }

    private static string HeaderOf(HttpResponseMessage response) =>
        string.Join(", ", response.Headers.WwwAuthenticate.Select(h => h.ToString()));
}
