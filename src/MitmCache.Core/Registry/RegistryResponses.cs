using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>What serving a blob came to: the range asked for and how much of it was sent.</summary>
internal readonly record struct ServeResult(ReadOutcome Outcome, long Start, long Length, long Sent);

/// <summary>How registry answers are written: cache results, relayed upstream answers, blob bodies.</summary>
internal static class RegistryResponses
{
    public const string ResultHeader = "X-MitmCache";

    public static void SetResult(HttpResponse response, RequestResult result)
    {
        response.Headers[ResultHeader] = result.Label();
        response.Headers[RegistryError.ApiVersionHeader] = RegistryError.ApiVersion;
    }

    /// <summary>
    /// Serves a committed blob or manifest from the cache. Manifests are re-hashed on every read,
    /// blobs as <c>--verify-on-read</c> says; a file that no longer matches its digest is quarantined
    /// and the response broken, so it is never served as valid.
    /// </summary>
    public static async Task<long> ServeCachedAsync(HttpContext context, BlobCache cache, CacheMetrics metrics, CachedBlob blob, RequestResult result, bool manifest)
    {
        using var source = cache.OpenCommitted(blob) ?? throw new FileNotFoundException("evicted while being served", blob.Path);
        return await ServeCachedAsync(context, cache, metrics, source, result, manifest);
    }

    /// <inheritdoc cref="ServeCachedAsync(HttpContext, BlobCache, CacheMetrics, CachedBlob, RequestResult, bool)"/>
    public static async Task<long> ServeCachedAsync(HttpContext context, BlobCache cache, CacheMetrics metrics, BlobSource source, RequestResult result, bool manifest)
    {
        cache.Touch(source.Digest);
        SetResult(context.Response, result);
        var served = await ServeFileAsync(context, source, verify: manifest || cache.ShouldVerifyRead());
        if (served.Outcome == ReadOutcome.Corrupt)
        {
            cache.Quarantine(source.Digest);
        }

        if (served.Outcome is ReadOutcome.SourceFailed or ReadOutcome.Corrupt)
        {
            context.Abort();
        }

        metrics.CacheBytes(served.Sent);
        return served.Sent;
    }

    /// <summary>Streams an upstream answer to the client unchanged. Returns the body bytes sent.</summary>
    public static async Task<long> RelayAsync(HttpContext context, HttpResponseMessage upstream, RequestResult result)
    {
        HeaderRules.CopyResponseHead(upstream, context.Response);
        context.Response.Headers[ResultHeader] = result.Label();
        await using var body = await upstream.Content.ReadAsStreamAsync(context.RequestAborted);
        var copy = await StreamCopier.CopyAsync(body, context.Response.Body, context.RequestAborted);
        if (copy.Failure == CopyFailure.Read)
        {
            context.Abort();
        }

        return copy.Bytes;
    }

    /// <summary>
    /// Upstream could not be asked and the cache may not answer for it. A client that may read the repository
    /// gets 503; any other gets what the registry itself answers a client it cannot authorize: 401 with the
    /// remembered challenge, scoped to the repository (so a client without credentials fetches a token, from
    /// us if need be), or 503 for a registry without one. What is cached makes no difference, so a refused
    /// client learns nothing about the cache.
    /// </summary>
    public static async Task<RegistryOutcome> UnreachableAsync(HttpContext context, RegistryChallenges challenges, RegistryAuthorizer authorizer,
        InterceptTarget target, string repository, string reason, RequestResult result = RequestResult.Error)
    {
        SetResult(context.Response, RequestResult.Error);
        if (!authorizer.MayReadOffline(context, target, repository)
            && await challenges.ScopedChallengeAsync(target.Authority, repository, context.RequestAborted) is { } challenge)
        {
            context.Response.Headers.WWWAuthenticate = challenge;
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized, "authentication required", context.RequestAborted);
        }
        else
        {
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unavailable, $"upstream {target.Authority}: {reason}", context.RequestAborted);
        }

        return new(result, 0);
    }

    /// <summary>
    /// Writes a blob source (a stored blob or manifest, a fill's growing file, an origin's body passed through),
    /// honouring a single Range. On <see cref="ReadOutcome.SourceFailed"/> the caller must break the connection (or
    /// resume the body from elsewhere), so the client never sees a clean end of a bad body.
    /// </summary>
    public static async Task<ServeResult> ServeFileAsync(HttpContext context, BlobSource source, bool verify = false)
    {
        var response = context.Response;
        var (size, digest) = (source.Size, source.Digest.ToString());
        response.ContentType = source.MediaType;
        response.Headers["Docker-Content-Digest"] = digest;
        response.Headers.ETag = $"\"{digest}\"";
        long start = 0, length;
        if (size is { } total)
        {
            response.Headers.AcceptRanges = "bytes";
            var range = ByteRange.Resolve(context.Request.Headers.Range, total);
            if (range.Kind == RangeKind.Unsatisfiable)
            {
                response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                response.Headers.ContentRange = $"bytes */{total}";
                return new(ReadOutcome.Completed, 0, 0, 0);
            }

            if (range.Kind == RangeKind.Partial)
            {
                response.StatusCode = StatusCodes.Status206PartialContent;
                response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {range.Start}-{range.Start + range.Length - 1}/{total}");
            }

            (start, length) = (range.Start, range.Length);
            response.ContentLength = length;
        }
        else
        {
            length = long.MaxValue; // unknown size: stream until the fill ends (chunked)
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            return new(ReadOutcome.Completed, start, length, 0);
        }

        var (outcome, sent) = await source.CopyToAsync(response.BodyWriter, start, length, verify, context.RequestAborted);
        return new(outcome, start, length, sent);
    }
}
