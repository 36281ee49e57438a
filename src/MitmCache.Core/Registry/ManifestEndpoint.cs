using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// <c>GET</c>/<c>HEAD /v2/&lt;name&gt;/manifests/&lt;reference&gt;</c>.
/// By digest: immutable, verified, cached. By tag: upstream first (short timeout), falling back to the
/// cached tag → digest mapping on connection errors, timeouts, 5xx and 429; or TTL / offline policies.
/// </summary>
internal sealed class ManifestEndpoint(
    BlobCache cache,
    RegistryUpstream upstream,
    RegistryAuthorizer authorizer,
    AccessGrants grants,
    AccessTokens tokens,
    RegistryChallenges challenges,
    ProxySettings settings,
    CacheMetrics metrics,
    ILogger<ManifestEndpoint> logger)
{
    private const int MaxManifestBytes = 4 << 20;

    public async Task<RegistryOutcome> HandleAsync(HttpContext context, InterceptTarget target, ManifestRoute route)
    {
        if (route.Digest is { } digest)
        {
            if (cache.TryGet(digest) is { } hit)
            {
                var access = await authorizer.AuthorizeAsync(context, target, route.Name, digest, hit.Record.MediaType);
                return access.Decision == AccessDecision.Allowed
                    ? await ServeAsync(context, hit, "hit")
                    : await DenyAsync(context, target, route, access);
            }

            return await FetchAsync(context, target, route, staleOnFault: false);
        }

        if (settings.ManifestPolicy != ManifestPolicy.UpstreamFirst && FindCachedTag(context, target, route) is var (tag, blob))
        {
            var fresh = settings.ManifestPolicy == ManifestPolicy.Offline || tag.FetchedAt > cache.Now - settings.ManifestTtl;
            if (fresh && authorizer.AuthorizeOffline(context, target, route.Name, blob.Digest))
            {
                return await ServeAsync(context, blob, "hit");
            }
        }

        return await FetchAsync(context, target, route, staleOnFault: true);
    }

    private async Task<RegistryOutcome> FetchAsync(HttpContext context, InterceptTarget target, ManifestRoute route, bool staleOnFault)
    {
        var isHead = HttpMethods.IsHead(context.Request.Method);
        using var request = upstream.CreateRequest(isHead ? HttpMethod.Head : HttpMethod.Get, target, $"/v2/{route.Name}/manifests/{route.Reference}", context.Request);
        var authorization = request.Headers.Authorization?.ToString();
        string reason;
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout, context.RequestAborted);
            if (response.StatusCode == HttpStatusCode.OK && !isHead)
            {
                var stored = await StoreAsync(context, target, route, response, authorization);
                if (stored is not null)
                {
                    return stored.Value;
                }

                reason = "sent a manifest that does not match its digest";
            }
            else if (response.StatusCode == HttpStatusCode.OK)
            {
                RememberTagFromHead(context, target, route, response);
                grants.RecordSuccess(authorization, target.Authority, route.Name);
                return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
            }
            else if (!RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    grants.RecordRefusal(authorization, target.Authority, route.Name);
                    challenges.LearnFromRefusal(target.Authority, response);
                }

                return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
            }
            else
            {
                reason = $"answered {(int)response.StatusCode}";
                metrics.UpstreamError(((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            reason = HttpForwarder.Describe(ex).Reason;
            metrics.UpstreamError(ex is TimeoutException ? "timeout" : "connect");
        }

        if (staleOnFault && FindCachedTag(context, target, route) is var (_, blob))
        {
            if (authorizer.AuthorizeOffline(context, target, route.Name, blob.Digest))
            {
                logger.ServingStale(target.Authority, route.Name, route.Reference, reason);
                return await ServeAsync(context, blob, "stale");
            }

            logger.OfflineRefused(target.Authority, route.Name);
            return await DenyAsync(context, target, route, new AccessResult(AccessDecision.Unavailable));
        }

        RegistryResponses.SetResult(context.Response, "error");
        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unavailable, $"upstream {target.Authority} {reason}", context.RequestAborted);
        return new("error", 0);
    }

    /// <summary>Verifies, stores and serves an upstream manifest. Null when it fails verification.</summary>
    private async Task<RegistryOutcome?> StoreAsync(HttpContext context, InterceptTarget target, ManifestRoute route, HttpResponseMessage response, string? authorization)
    {
        if (response.Content.Headers.ContentLength > MaxManifestBytes)
        {
            return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
        }

        var body = await response.Content.ReadAsByteArrayAsync(context.RequestAborted);
        var mediaType = RegistryUpstream.MediaTypeOf(response) ?? MediaTypes.OciManifest;
        var announced = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
        var expected = route.Digest ?? (Digest.TryParse(announced, out var parsed) ? parsed : (Digest?)null);
        var digest = Digest.Compute(body, expected?.Algorithm ?? Digest.Sha256);
        if (expected is { } wanted && wanted != digest)
        {
            logger.ManifestRejected(target.Authority, route.Name, route.Reference, $"content hashes to {digest}, expected {wanted}");
            return null;
        }

        var registry = target.Authority;
        var key = digest.ToString();
        if (cache.StoreSmall(digest, body, mediaType))
        {
            var now = cache.Now;
            cache.Index.Link(registry, route.Name, key, now);
            if (!tokens.IsAnonymous(authorization) && cache.Index.IsPublic(registry, route.Name) is null)
            {
                cache.Index.SetVisibility(registry, route.Name, isPublic: false, now); // unknown counts as private
            }

            grants.RecordSuccess(authorization, registry, route.Name); // an anonymous success makes it public
            if (route.Tag is { } tag)
            {
                PutTag(context, target, route.Name, tag, key, mediaType);
            }
        }

        var response2 = context.Response;
        RegistryResponses.SetResult(response2, "miss");
        response2.ContentType = mediaType;
        response2.ContentLength = body.Length;
        response2.Headers["Docker-Content-Digest"] = key;
        response2.Headers.ETag = $"\"{key}\"";
        await response2.Body.WriteAsync(body, context.RequestAborted);
        return new("miss", body.Length);
    }

    /// <summary>
    /// containerd resolves a tag with HEAD and then GETs the manifest by digest. Record the tag →
    /// digest answer so the tag resolves offline once that digest is cached.
    /// </summary>
    private void RememberTagFromHead(HttpContext context, InterceptTarget target, ManifestRoute route, HttpResponseMessage response)
    {
        if (route.Tag is not { } tag
            || !response.Headers.TryGetValues("Docker-Content-Digest", out var values)
            || !Digest.TryParse(values.FirstOrDefault(), out var digest)
            || RegistryUpstream.MediaTypeOf(response) is not { } mediaType)
        {
            return;
        }

        PutTag(context, target, route.Name, tag, digest.ToString(), mediaType);
    }

    private void PutTag(HttpContext context, InterceptTarget target, string repository, string tag, string digest, string mediaType) =>
        cache.Index.PutTag(new TagRecord
        {
            TagKey = TagRecord.MakeTagKey(target.Authority, repository, tag),
            Registry = target.Authority,
            Repository = repository,
            Tag = tag,
            AcceptKey = ManifestAcceptKey(context.Request.Headers.Accept),
            Digest = digest,
            MediaType = mediaType,
            FetchedAt = cache.Now,
        });

    /// <summary>The client's Accept set reduced to manifest media types: the tag key part, bounded whatever the client sends.</summary>
    private static string ManifestAcceptKey(Microsoft.Extensions.Primitives.StringValues accept) =>
        string.Join(',', MediaTypes.AcceptKey(accept).Split(',').Where(MediaTypes.IsManifest));

    /// <summary>The cached mapping for a tag: the exact Accept set first, else the newest the client accepts.</summary>
    private (TagRecord Tag, CachedBlob Blob)? FindCachedTag(HttpContext context, InterceptTarget target, ManifestRoute route)
    {
        if (route.Tag is not { } tag)
        {
            return null;
        }

        var accept = context.Request.Headers.Accept;
        var acceptKey = ManifestAcceptKey(accept);
        var candidates = cache.Index.FindTags(target.Authority, route.Name, tag)
            .Where(t => t.AcceptKey == acceptKey || MediaTypes.Accepts(accept, t.MediaType))
            .OrderByDescending(t => t.AcceptKey == acceptKey)
            .ThenByDescending(t => t.FetchedAt);
        foreach (var candidate in candidates)
        {
            if (Digest.TryParse(candidate.Digest, out var digest) && cache.TryGet(digest) is { } blob)
            {
                return (candidate, blob);
            }
        }

        return null;
    }

    private async Task<RegistryOutcome> ServeAsync(HttpContext context, CachedBlob blob, string result) =>
        new(result, await RegistryResponses.ServeCachedAsync(context, cache, metrics, blob, result, manifest: true));

    private async Task<RegistryOutcome> DenyAsync(HttpContext context, InterceptTarget target, ManifestRoute route, AccessResult access)
    {
        if (access.Response is { } refusal)
        {
            using (refusal)
            {
                await RegistryResponses.RefuseAsync(context, refusal, RegistryErrorCode.ManifestUnknown);
            }

            return new("refused", 0);
        }

        // No proof possible offline: ask for credentials, as the registry itself would.
        if (RegistryResponses.ScopedChallenge(cache.Index.FindChallenge(target.Authority)?.WwwAuthenticate, route.Name) is { } challenge)
        {
            context.Response.Headers.WWWAuthenticate = challenge;
        }

        RegistryResponses.SetResult(context.Response, "refused");
        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized,
            $"{route.Name}: access cannot be verified while the registry is unreachable", context.RequestAborted);
        return new("refused", 0);
    }
}
