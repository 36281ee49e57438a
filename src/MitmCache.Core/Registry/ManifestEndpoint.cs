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
/// cached tag → digest mapping on connection errors, timeouts, 5xx, 429 and invalid answers; or TTL /
/// offline policies. A cached manifest is served only where this client may read it already (see
/// <see cref="RegistryAuthorizer"/>); every other request goes upstream exactly as if nothing were cached,
/// so a refusal says nothing about the cache, and the manifest upstream sends is what links it here.
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
    ILogger<ManifestEndpoint> logger,
    LinkRecords links,
    TagRecords tags,
    RepositoryVisibility visibility,
    ObjectStore.BucketWrites? bucket = null,
    ObjectStore.BucketReads? bucketReads = null)
{
    public async Task<RegistryOutcome> HandleAsync(HttpContext context, InterceptTarget target, ManifestRoute route)
    {
        if (route.Digest is { } digest)
        {
            return cache.TryGet(digest) is { } hit && authorizer.IsAllowed(context, target, route.Name, digest)
                ? await ServeAsync(context, hit, RequestResult.Hit)
                : await FetchAsync(context, target, route);
        }

        if (settings.ManifestPolicy != ManifestPolicy.UpstreamFirst && FindCachedTag(context, target, route) is var (tag, blob))
        {
            var fresh = settings.ManifestPolicy == ManifestPolicy.Offline || tag.FetchedAt > cache.Now - settings.ManifestTtl;
            if (fresh && authorizer.AuthorizeOffline(context, target, route.Name, blob.Digest))
            {
                return await ServeAsync(context, blob, RequestResult.Hit);
            }
        }

        return await FetchAsync(context, target, route);
    }

    private async Task<RegistryOutcome> FetchAsync(HttpContext context, InterceptTarget target, ManifestRoute route)
    {
        var isHead = HttpMethods.IsHead(context.Request.Method);
        using var request = upstream.CreateRequest(isHead ? HttpMethod.Head : HttpMethod.Get, target, $"/v2/{route.Name}/manifests/{route.Reference}", context.Request);
        var authorization = request.Headers.Authorization?.ToString();
        string reason;
        var invalid = false;
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout, context.RequestAborted);
            if (response.StatusCode == HttpStatusCode.OK && !isHead)
            {
                var (stored, problem) = await StoreAsync(context, target, route, response, authorization);
                if (stored is { } outcome)
                {
                    return outcome;
                }

                (reason, invalid) = (problem, true);
            }
            else if (response.StatusCode == HttpStatusCode.OK)
            {
                RememberHead(context, target, route, response, authorization);
                return new(RequestResult.Forwarded, await RegistryResponses.RelayAsync(context, response, RequestResult.Forwarded));
            }
            else if (!RegistryUpstream.IsUpstreamFault(response.StatusCode))
            {
                if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    grants.RecordRefusal(authorization, target.Authority, route.Name);
                    challenges.LearnFromRefusal(target.Authority, response);
                }

                return new(RequestResult.Forwarded, await RegistryResponses.RelayAsync(context, response, RequestResult.Forwarded));
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

        // Upstream failed us: the cached copy, for a client that may read it without upstream's say.
        var stale = route.Digest is { } digest ? cache.TryGet(digest) : FindCachedTag(context, target, route)?.Blob;
        if (stale is not null && authorizer.AuthorizeOffline(context, target, route.Name, stale.Digest))
        {
            logger.ServingStale(target.Authority, route.Name, route.Reference, reason);
            return await ServeAsync(context, stale, RequestResult.Stale);
        }

        if (bucketReads is not null && await FromBucketAsync(context, target, route, bucketReads) is { } fromBucket)
        {
            return fromBucket;
        }

        if (stale is not null)
        {
            logger.OfflineRefused(target.Authority, route.Name);
        }

        if (invalid)
        {
            RegistryResponses.SetResult(context.Response, RequestResult.Error);
            await RegistryError.WriteAsync(context.Response, StatusCodes.Status502BadGateway, RegistryErrorCode.ManifestInvalid,
                $"upstream {target.Authority} {reason}", context.RequestAborted);
            return new(RequestResult.Error, 0);
        }

        return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, reason);
    }

    /// <summary>
    /// Reads (up to 4 MiB), checks, verifies, stores and serves an upstream manifest. The outcome is null,
    /// with the problem, when the body is too large, is not the manifest it claims, or does not match its digest.
    /// </summary>
    private async Task<(RegistryOutcome? Outcome, string Problem)> StoreAsync(HttpContext context, InterceptTarget target, ManifestRoute route, HttpResponseMessage response, string? authorization)
    {
        var body = await BoundedContent.ReadAsync(response.Content, BoundedContent.MaxManifestBytes, context.RequestAborted);
        if (body is null)
        {
            var limit = BoundedContent.Describe(BoundedContent.MaxManifestBytes);
            logger.ManifestRejected(target.Authority, route.Name, route.Reference, $"larger than {limit}");
            return (null, $"sent a manifest larger than {limit} (the limit); it was not read further");
        }

        if (ManifestFormat.Check(body, response.Content.Headers.ContentType?.ToString(), out var problem) is not { } mediaType)
        {
            logger.ManifestRejected(target.Authority, route.Name, route.Reference, problem);
            return (null, $"sent a body that is not a manifest: {problem}");
        }

        var announced = response.Headers.TryGetValues("Docker-Content-Digest", out var values) ? values.FirstOrDefault() : null;
        var expected = route.Digest ?? (Digest.TryParse(announced, out var parsed) ? parsed : (Digest?)null);
        var digest = Digest.Compute(body, expected?.Algorithm ?? Digest.Sha256);
        if (expected is { } wanted && wanted != digest)
        {
            logger.ManifestRejected(target.Authority, route.Name, route.Reference, $"content hashes to {digest}, expected {wanted}");
            return (null, "sent a manifest that does not match its digest");
        }

        var registry = target.Authority;
        var key = digest.ToString();
        if (cache.StoreSmall(digest, body, mediaType))
        {
            // Upstream sent these very bytes through this repository: the link is earned.
            var now = cache.Now;
            links.Link(registry, route.Name, digest, now);
            if (!tokens.IsAnonymous(authorization) && visibility.IsPublic(registry, route.Name) is null)
            {
                visibility.SetVisibility(registry, route.Name, isPublic: false, now); // unknown counts as private
            }

            grants.RecordSuccess(authorization, registry, route.Name); // an anonymous success makes it public
            if (visibility.IsPublic(registry, route.Name) == true)
            {
                bucket?.PublicLinked(registry, route.Name, digest);
            }
            if (route.Tag is { } tag)
            {
                PutTag(context, target, route.Name, tag, digest, mediaType);
            }
        }

        var answer = context.Response;
        RegistryResponses.SetResult(answer, RequestResult.Miss);
        answer.ContentType = mediaType;
        answer.ContentLength = body.Length;
        answer.Headers["Docker-Content-Digest"] = key;
        answer.Headers.ETag = $"\"{key}\"";
        await answer.Body.WriteAsync(body, context.RequestAborted);
        return (new(RequestResult.Miss, body.Length), "");
    }

    /// <summary>
    /// Upstream failed and nothing local may be served: the blob store's copy, by digest or by the tag's last confirmed digest
    /// (a parent that never saw the image), read whole, verified, and served under the offline rules of a local copy
    /// (<see cref="ObjectStore.BucketAccess"/>). Null when the bucket has nothing this client may have.
    /// </summary>
    private async Task<RegistryOutcome?> FromBucketAsync(HttpContext context, InterceptTarget target, ManifestRoute route, ObjectStore.BucketReads reads)
    {
        var ct = context.RequestAborted;
        Digest digest;
        if (route.Digest is { } asked)
        {
            digest = asked;
        }
        else if ((await reads.Tier.GetTagAsync(target.Authority, route.Name, route.Tag!, ct)).Value is not { } pointer
            || !Digest.TryParse(pointer.Digest, out digest) || !MediaTypes.Accepts(context.Request.Headers.Accept, pointer.MediaType))
        {
            return null;
        }

        using var access = ObjectStore.BucketAccess.Capture(authorizer, visibility, context, target, route.Name, digest, probe: false);
        var (allowed, why) = await access.DecideAsync(reads.Tier, digest, 0, ct);
        if (!allowed || await reads.ReadManifestAsync(digest, ct) is not var (body, type)
            || ManifestFormat.Check(body, type, out _) is not { } mediaType)
        {
            return null;
        }

        logger.BlobStoreServing(target.Authority, route.Name, route.Reference, why);
        var key = digest.ToString();
        var answer = context.Response;
        RegistryResponses.SetResult(answer, RequestResult.Stale);
        answer.ContentType = mediaType;
        answer.ContentLength = body.Length;
        answer.Headers["Docker-Content-Digest"] = key;
        answer.Headers.ETag = $"\"{key}\"";
        if (HttpMethods.IsHead(context.Request.Method))
        {
            return new(RequestResult.Stale, 0);
        }

        await answer.Body.WriteAsync(body, ct);
        return new(RequestResult.Stale, body.Length);
    }

    /// <summary>
    /// A manifest HEAD answered 200. It proves something only when it is a manifest's answer (a manifest
    /// media type and a digest, the one asked for if by digest): then upstream said yes to this client for
    /// this repository, and a tag's digest is remembered, because containerd resolves a tag with HEAD and then
    /// GETs the manifest by digest; the tag then resolves offline once that digest is cached (and linked here).
    /// </summary>
    private void RememberHead(HttpContext context, InterceptTarget target, ManifestRoute route, HttpResponseMessage response, string? authorization)
    {
        if (!response.Headers.TryGetValues("Docker-Content-Digest", out var values)
            || !Digest.TryParse(values.FirstOrDefault(), out var digest)
            || (route.Digest is { } asked && asked != digest)
            || RegistryUpstream.MediaTypeOf(response) is not { } mediaType
            || !MediaTypes.IsManifest(mediaType))
        {
            return;
        }

        grants.RecordSuccess(authorization, target.Authority, route.Name);
        if (route.Tag is { } tag)
        {
            PutTag(context, target, route.Name, tag, digest, mediaType);
        }
    }

    private void PutTag(HttpContext context, InterceptTarget target, string repository, string tag, Digest digest, string mediaType)
    {
        bucket?.TagConfirmed(target.Authority, repository, tag, digest, mediaType);

        tags.PutTag(new TagRecord
        {
            TagKey = TagRecord.MakeTagKey(target.Authority, repository, tag),
            Registry = target.Authority,
            Repository = repository,
            Tag = tag,
            AcceptKey = ManifestAcceptKey(context.Request.Headers.Accept),
            Digest = digest.ToString(),
            MediaType = mediaType,
            FetchedAt = cache.Now,
        });
    }

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
        var candidates = tags.FindTags(target.Authority, route.Name, tag)
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

    private async Task<RegistryOutcome> ServeAsync(HttpContext context, CachedBlob blob, RequestResult result) =>
        new(result, await RegistryResponses.ServeCachedAsync(context, cache, metrics, blob, result, manifest: true));
}
