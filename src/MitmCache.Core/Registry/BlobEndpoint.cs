using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// <c>GET</c>/<c>HEAD /v2/&lt;name&gt;/blobs/&lt;digest&gt;</c>. Decides what this client may be served, asks the cache
/// (<see cref="BlobCache.OpenAsync"/>, which decides where the bytes come from: the committed file, a fill in flight, a
/// new fill from this client's origin), and streams the answer (Range supported). A cached blob this client may not read,
/// or one not linked to this repository, is asked for upstream exactly as if it were not cached: a refused client gets
/// upstream's own answer (or, upstream down, the error an uncached digest gets), and learns nothing about the cache.
/// </summary>
/// <param name="visibility">Finds out whether a repository is public when nothing told it (none in tests of other things).</param>
/// <param name="tiers">Origins asked before upstream when a read must fill (the S3 tier); none by default.</param>
internal sealed class BlobEndpoint(BlobCache cache, RegistryUpstream upstream, RegistryAuthorizer authorizer, AccessGrants grants, RegistryChallenges challenges, CacheMetrics metrics, LinkRecords links,
    VisibilityProbe? visibility, IEnumerable<IBlobOriginTier> tiers)
{
    public async Task<RegistryOutcome> HandleAsync(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        try
        {
            await cache.WaitForCommitAsync(route.Digest, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return new(RequestResult.Aborted, 0);
        }

        var hit = cache.TryGet(route.Digest);
        var decision = hit is not null ? await AuthorizeHitAsync(context, target, route, hit) : HitDecision.Miss;
        if (decision.Answered is { } answered)
        {
            return answered;
        }

        if (decision.Result is null && HttpMethods.IsHead(context.Request.Method))
        {
            return await ForwardHeadAsync(context, target, route);
        }

        var origin = Origin(context, target, route);
        var read = new BlobRead(route.Digest, origin, authorizer.Reader(context, target, route.Name, route.Digest), Hit: decision.Result is not null ? hit : null,
            Committed(context, target, route), MayFill: !HttpMethods.IsHead(context.Request.Method));
        try
        {
            using var source = await cache.OpenAsync(read, context.RequestAborted);
            return await ServeAsync(context, target, route, source, origin, decision.Result ?? RequestResult.Hit);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return new(RequestResult.Aborted, 0); // the client left: nothing is known about upstream
        }
    }

    /// <summary>Where a fill for this read gets its bytes: each tier that has something to offer, then upstream.</summary>
    private IBlobOrigin Origin(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        IBlobOrigin direct = new UpstreamBlobOrigin(upstream, grants, challenges, context, target, route);
        var front = tiers.Select(t => t.OriginFor(context, target, route)).OfType<IBlobOrigin>().ToList();
        return front.Count == 0 ? direct : new OriginChain([.. front, direct]);
    }

    /// <summary>What to do about a cached blob: serve it (as "hit" or "stale"), answer already given, or go on as a miss.</summary>
    private readonly record struct HitDecision(RequestResult? Result, RegistryOutcome? Answered)
    {
        public static readonly HitDecision Miss = default;
    }

    /// <summary>
    /// A cached blob, for a repository it is linked to (or, its bytes being public already, any repository upstream
    /// confirms it for). Served when this client may read it; otherwise a miss, unless upstream cannot be asked (then
    /// the answer an uncached digest gets) or the request is a HEAD (then the probe's answer is the one a HEAD miss relays).
    /// </summary>
    private async Task<HitDecision> AuthorizeHitAsync(HttpContext context, InterceptTarget target, BlobRoute route, CachedBlob hit)
    {
        var digest = route.Digest;
        var linked = links.IsLinked(target.Authority, route.Name, digest);
        if (!linked && !authorizer.IsPublicAnywhere(digest))
        {
            return HitDecision.Miss; // its bytes must come through this repository first
        }

        if (linked && authorizer.IsAuthorized(context, target, route.Name))
        {
            return new(RequestResult.Hit, null);
        }

        using var probe = await authorizer.ProbeAsync(context, target, route.Name, digest, hit.Record.Size);
        if (probe.Outcome == ProbeOutcome.Confirmed)
        {
            if (!linked)
            {
                links.Link(target.Authority, route.Name, digest, cache.Now); // public bytes: the answer is enough
            }

            return new(RequestResult.Hit, null);
        }

        if (probe.Outcome is ProbeOutcome.Fault or ProbeOutcome.Unreachable && authorizer.AuthorizeOffline(context, target, route.Name, digest))
        {
            return new(RequestResult.Stale, null);
        }

        if (probe.Outcome == ProbeOutcome.Unreachable)
        {
            return new(null, await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, probe.Reason, RequestResult.Refused));
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            // The probe was the very request a HEAD miss forwards: its answer is the one to give.
            await RegistryResponses.RelayAsync(context, probe.Response!, RequestResult.Forwarded);
            return new(null, new(RequestResult.Refused, 0));
        }

        return HitDecision.Miss; // not confirmed: fetch it through this repository as any miss, with this client's credentials
    }

    /// <summary>
    /// The fill's hook on commit. An answer that proved this client's access (upstream's own 200) is kept once the bytes
    /// are verified against the digest: the link (a link is only ever earned by the blob itself) and the grant. A
    /// repository whose visibility is not known gets it found out (<see cref="VisibilityProbe"/>).
    /// </summary>
    private Action<FillHead> Committed(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        return head =>
        {
            if (head.ProvesAccess)
            {
                links.Link(target.Authority, route.Name, route.Digest, cache.Now);
                grants.RecordSuccess(authorization, target.Authority, route.Name);
                visibility?.LearnIfUnknown(target, route.Name, route.Digest, head.Size); // a blob's owner in a tier never saw the token dance
            }
        };
    }

    private async Task<RegistryOutcome> ServeAsync(HttpContext context, InterceptTarget target, BlobRoute route, BlobSource source, IBlobOrigin origin, RequestResult hitResult)
    {
        switch (source.Kind)
        {
            case BlobSourceKind.Committed:
                // A fill of this read's that finished before the read opened it is still this read's miss (or coalesced).
                var result = !source.Filled ? hitResult : source.Joined ? RequestResult.Coalesced : RequestResult.Miss;
                return new(result, await RegistryResponses.ServeCachedAsync(context, cache, metrics, source, result, manifest: false));
            case BlobSourceKind.Filling:
                return await ServeFillAsync(context, source, origin);
            case BlobSourceKind.PassThrough:
                RegistryResponses.SetResult(context.Response, RequestResult.Bypass);
                var passed = await RegistryResponses.ServeFileAsync(context, source);
                if (passed.Outcome == ReadOutcome.SourceFailed)
                {
                    context.Abort();
                }

                return new(RequestResult.Bypass, passed.Sent);
            case BlobSourceKind.Bypass:
                return HttpMethods.IsHead(context.Request.Method) ? await ForwardHeadAsync(context, target, route) : await BypassAsync(context, target, route, RequestResult.Bypass);
            case BlobSourceKind.Refused:
                var refusal = source.Refusal!.Response;
                if (RegistryUpstream.IsUpstreamFault(refusal.StatusCode))
                {
                    metrics.UpstreamError(((int)refusal.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                return new(RequestResult.Forwarded, await RegistryResponses.RelayAsync(context, refusal, RequestResult.Forwarded));
            case BlobSourceKind.Unreachable:
                if (source.Fault!.Class.Length > 0)
                {
                    metrics.UpstreamError(source.Fault.Class);
                }

                return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, source.Fault.Reason);
            default:
                RegistryResponses.SetResult(context.Response, RequestResult.Error);
                await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unavailable, "the upstream fetch of this blob keeps failing", context.RequestAborted);
                return new(RequestResult.Error, 0);
        }
    }

    /// <summary>
    /// Streams a fill as it grows. When the disk fails the fill (full, read-only), the rest of this client's body comes
    /// from its origin with a Range; any other failure (bad digest, upstream fault) breaks the response.
    /// </summary>
    private async Task<RegistryOutcome> ServeFillAsync(HttpContext context, BlobSource source, IBlobOrigin origin)
    {
        var result = source.Joined ? RequestResult.Coalesced : RequestResult.Miss;
        RegistryResponses.SetResult(context.Response, result);
        var served = await RegistryResponses.ServeFileAsync(context, source);
        metrics.CacheBytes(served.Sent);
        if (served.Outcome != ReadOutcome.SourceFailed)
        {
            return new(result, served.Sent);
        }

        if (await source.DiskFailedAsync() && source.Size is not null)
        {
            var resumed = await ResumeAsync(context, origin, served.Start + served.Sent, served.Length - served.Sent);
            return new(RequestResult.Bypass, served.Sent + resumed);
        }

        context.Abort();
        return new(RequestResult.Error, served.Sent);
    }

    /// <summary>Relays exactly the <paramref name="remaining"/> bytes from <paramref name="offset"/>, asked of the origin. Returns the bytes relayed.</summary>
    private static async Task<long> ResumeAsync(HttpContext context, IBlobOrigin origin, long offset, long remaining)
    {
        try
        {
            using var answer = await origin.FetchAsync(offset, context.RequestAborted);
            if (answer is OriginBody { } body && body.Offset == offset)
            {
                var copy = await StreamCopier.CopyAsync(new LimitedStream(body.Body, remaining), context.Response.Body, context.RequestAborted);
                if (copy.Failure == CopyFailure.None && copy.Bytes == remaining)
                {
                    return copy.Bytes;
                }

                context.Abort();
                return copy.Bytes;
            }
        }
        catch (OperationCanceledException)
        {
        }

        context.Abort();
        return 0;
    }

    /// <summary>
    /// Relays upstream's answer untouched, caching nothing: when the cache cannot store right now (fail open),
    /// or for a client that may not share the fill in flight. Refusals are relayed as any miss relays them.
    /// </summary>
    private async Task<RegistryOutcome> BypassAsync(HttpContext context, InterceptTarget target, BlobRoute route, RequestResult result)
    {
        using var request = BlobRequest(HttpMethod.Get, context, target, route);
        if (context.Request.Headers.Range.Count > 0)
        {
            request.Headers.TryAddWithoutValidation("Range", context.Request.Headers.Range.ToString());
        }

        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout * 3, context.RequestAborted);
            if (response.StatusCode is System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.PartialContent)
            {
                return new(result, await RegistryResponses.RelayAsync(context, response, result));
            }

            new UpstreamBlobOrigin(upstream, grants, challenges, context, target, route).Refused(response);
            return new(RequestResult.Forwarded, await RegistryResponses.RelayAsync(context, response, RequestResult.Forwarded));
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, HttpForwarder.Describe(ex).Reason);
        }
    }

    private async Task<RegistryOutcome> ForwardHeadAsync(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        using var request = BlobRequest(HttpMethod.Head, context, target, route);
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout, context.RequestAborted);
            return new(RequestResult.Forwarded, await RegistryResponses.RelayAsync(context, response, RequestResult.Forwarded));
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, HttpForwarder.Describe(ex).Reason);
        }
    }

    /// <summary>This blob at upstream, with the client's credentials; bodies over HTTP/1.1.</summary>
    private HttpRequestMessage BlobRequest(HttpMethod method, HttpContext context, InterceptTarget target, BlobRoute route) =>
        upstream.CreateRequest(method, target, $"/v2/{route.Name}/blobs/{route.Digest}", context.Request, bulk: method == HttpMethod.Get);
}
