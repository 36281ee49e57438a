using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// Finds out whether a repository is public by asking upstream as a client without credentials would: a blob
/// <c>HEAD</c>, and on a Bearer challenge the anonymous token dance and the <c>HEAD</c> again. Only a final 200 for
/// exactly that blob makes it public (<see cref="RegistryAuthorizer.Confirms"/>); a refusal of the anonymous token
/// makes it private; anything else leaves it unknown (private, for every rule).
/// <para>Why: a proxy usually learns that a repository is public from the token dance that passes through it (a token
/// issued to no credential, then used with success). A parent of the cluster tier that owns a blob by its digest
/// never sees that dance: it went to the parent that owns the repository. Without this, the blob's owner could not
/// serve a public image offline to a client holding a token another parent minted (docs/cluster.md). So when a fill
/// proved a credential's access to a repository whose visibility this proxy does not know, it asks once, in the
/// background, coalesced per repository. A check that found nothing is not repeated for <see cref="RetryAfter"/>.</para>
/// <para>It sends no client's credential and follows a realm only if the registry's own challenge named it and
/// <see cref="TokenEndpoint.IsHonoured"/> accepts it (remembered through <see cref="RegistryChallenges"/>).</para>
/// </summary>
internal sealed class VisibilityProbe(RegistryUpstream upstream, RegistryChallenges challenges, AccessGrants grants, AccessTokens tokens,
    RepositoryVisibility visibility, TimeProvider time, ILogger<VisibilityProbe> logger)
{
    public static readonly TimeSpan RetryAfter = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<(string Registry, string Repository), DateTimeOffset> _asked = new();

    /// <summary>Starts a check of <paramref name="repository"/> unless its visibility is known, or one ran lately; returns it (for tests), or null.</summary>
    public Task<bool?>? LearnIfUnknown(InterceptTarget target, string repository, Digest digest, long? size)
    {
        var registry = target.Authority;
        var key = (registry.ToLowerInvariant(), repository);
        var now = time.GetUtcNow();
        if (visibility.FindRepository(registry, repository) is not null)
        {
            return null;
        }

        var mine = _asked.TryGetValue(key, out var at) ? at <= now - RetryAfter && _asked.TryUpdate(key, now, at) : _asked.TryAdd(key, now);
        if (!mine)
        {
            return null; // asked already, lately or right now
        }

        if (_asked.Count > 10_000)
        {
            foreach (var (old, when) in _asked)
            {
                if (when <= now - RetryAfter)
                {
                    _asked.TryRemove(old, out _);
                }
            }
        }

        return Task.Run(async () =>
        {
            try
            {
                var found = await AskAsync(target, repository, digest, size);
                if (found is { } isPublic)
                {
                    logger.VisibilityLearned(registry, repository, isPublic ? "public" : "private");
                }

                return found;
            }
            catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
            {
                logger.VisibilityUnknown(registry, repository, HttpForwarder.Describe(ex).Reason);
                return null;
            }
        });
    }

    private async Task<bool?> AskAsync(InterceptTarget target, string repository, Digest digest, long? size)
    {
        var registry = target.Authority;
        var blob = new Uri($"https://{registry}/v2/{repository}/blobs/{digest}");
        using (var open = await SendAsync(HttpMethod.Head, blob, authorization: null, followRedirects: true))
        {
            if (RegistryAuthorizer.Confirms(open, registry, digest, size))
            {
                return Record(registry, repository, isPublic: true);
            }

            if (open.StatusCode != HttpStatusCode.Unauthorized)
            {
                return null;
            }

            challenges.LearnFromRefusal(registry, open);
        }

        // The realm as remembered: only one the registry's own challenge named and the realm rules accept.
        if (challenges.Find(registry) is not { Realm: { } realm, WwwAuthenticate: { } remembered }
            || !WwwAuthenticate.TryParseBearer(remembered, out var bearer))
        {
            return null;
        }

        var query = (bearer.Service is null ? "" : $"service={Uri.EscapeDataString(bearer.Service)}&") + $"scope={Uri.EscapeDataString($"repository:{repository}:pull")}";
        var tokenUri = new UriBuilder(realm) { Query = query }.Uri;
        string token;
        TimeSpan lifetime;
        using (var answer = await SendAsync(HttpMethod.Get, tokenUri, authorization: null, followRedirects: false))
        {
            if (answer.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                return Record(registry, repository, isPublic: false);
            }

            if (answer.StatusCode != HttpStatusCode.OK
                || await BoundedContent.ReadAsync(answer.Content, BoundedContent.MaxTokenBytes, CancellationToken.None) is not { } body
                || TokenEndpoint.TokensIn(body).FirstOrDefault() is not ({ Length: > 0 } issued, var issuedFor))
            {
                return null;
            }

            (token, lifetime) = (issued, issuedFor);
        }

        using var again = await SendAsync(HttpMethod.Head, blob, "Bearer " + token, followRedirects: true);
        if (RegistryAuthorizer.Confirms(again, registry, digest, size))
        {
            tokens.RememberAnonymous(token, lifetime);
            return Record(registry, repository, isPublic: true);
        }

        return again.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? Record(registry, repository, isPublic: false) : null;
    }

    private bool Record(string registry, string repository, bool isPublic)
    {
        if (isPublic)
        {
            grants.RecordSuccess(null, registry, repository); // no credential, a success: public
        }
        else
        {
            grants.RecordAnonymousRefusal(registry, repository);
        }

        return isPublic;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, string? authorization, bool followRedirects)
    {
        using var request = new HttpRequestMessage(method, uri) { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };

        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        // The token realm is a host the registry named, not the client: checked and connected to as a redirect target.
        return await upstream.SendAsync(request, followRedirects, upstream.Timeout, CancellationToken.None, hostFromUpstream: method == HttpMethod.Get);
    }
}
