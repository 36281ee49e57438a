using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// <c>GET</c>/<c>HEAD /v2/&lt;name&gt;/blobs/&lt;digest&gt;</c>.
/// Hit: authorize, then stream the file (Range supported). Miss: one upstream fetch per digest;
/// the client that starts it and every client that joins stream from the growing file.
/// </summary>
internal sealed class BlobEndpoint(BlobCache cache, RegistryUpstream upstream, RegistryAuthorizer authorizer, AccessGrants grants, RegistryChallenges challenges, CacheMetrics metrics)
{
    private const int MaxAttempts = 3;

    public async Task<RegistryOutcome> HandleAsync(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        var digest = route.Digest;
        if (cache.TryGet(digest) is { } hit)
        {
            var access = await authorizer.AuthorizeAsync(context, target, route.Name, digest, manifestMediaType: null);
            if (access.Decision != AccessDecision.Allowed)
            {
                return await DenyAsync(context, target, route, access);
            }

            return new("hit", await ServeCommittedAsync(context, hit, "hit"));
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            return await ForwardHeadAsync(context, target, route);
        }

        if (cache.IsStorageDegraded)
        {
            return await BypassAsync(context, target, route);
        }

        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var (fill, owner) = cache.JoinOrStart(digest);
            string result;
            if (owner)
            {
                var started = await StartFillAsync(context, target, route, fill);
                if (started is not null)
                {
                    return started.Value;
                }

                result = "miss";
            }
            else
            {
                var access = await authorizer.AuthorizeAsync(context, target, route.Name, digest, manifestMediaType: null);
                if (access.Decision != AccessDecision.Allowed)
                {
                    return await DenyAsync(context, target, route, access);
                }

                result = "coalesced";
            }

            var head = await fill.Head.WaitAsync(context.RequestAborted);
            if (head is null)
            {
                continue; // abandoned before the body (the owner was refused): try on our own account
            }

            Microsoft.Win32.SafeHandles.SafeFileHandle file;
            BlobFill? growing = fill;
            try
            {
                file = File.OpenHandle(fill.TempPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            }
            catch (FileNotFoundException)
            {
                // Already committed (renamed) or discarded between the head and our open.
                if (await fill.Completion != FillOutcome.Committed || cache.TryGet(digest) is not { } committed)
                {
                    continue;
                }

                return new("hit", await ServeCommittedAsync(context, committed, "hit"));
            }

            using (file)
            {
                RegistryResponses.SetResult(context.Response, result);
                var served = await RegistryResponses.ServeFileAsync(context, file, head.Size, head.MediaType, digest.ToString(), growing);
                metrics.CacheBytes(served.Sent);
                if (served.Outcome != ReadOutcome.SourceFailed)
                {
                    return new(result, served.Sent);
                }

                // The disk failed the fill (full, read-only): finish this client's body straight from
                // upstream instead. Any other failure (bad digest, upstream fault) breaks the response.
                if (await growing.Completion == FillOutcome.StorageError && head.Size is not null)
                {
                    var resumed = await ResumeFromUpstreamAsync(context, target, route, served.Start + served.Sent, served.Length - served.Sent);
                    return new("bypass", served.Sent + resumed);
                }

                context.Abort();
                return new("error", served.Sent);
            }
        }

        RegistryResponses.SetResult(context.Response, "error");
        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unavailable, "the upstream fetch of this blob keeps failing", context.RequestAborted);
        return new("error", 0);
    }

    /// <summary>Sends the owner's upstream GET. Returns null when the fill was started, else the finished outcome.</summary>
    private async Task<RegistryOutcome?> StartFillAsync(HttpContext context, InterceptTarget target, BlobRoute route, BlobFill fill)
    {
        var key = route.Digest.ToString();
        using var request = BlobRequest(HttpMethod.Get, context, target, route);
        HttpResponseMessage response;
        try
        {
            // Blob heads come through redirects to CDNs: allow them three times the manifest timeout.
            response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout * 3, context.RequestAborted);
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
        {
            cache.Abandon(fill);
            metrics.UpstreamError(ex is TimeoutException ? "timeout" : "connect");
            if (context.RequestAborted.IsCancellationRequested)
            {
                return new("aborted", 0);
            }

            var reason = HttpForwarder.Describe(ex).Reason;
            RegistryResponses.SetResult(context.Response, "error");
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unavailable, $"upstream {target.Authority}: {reason}", context.RequestAborted);
            return new("error", 0);
        }

        if (response.StatusCode != System.Net.HttpStatusCode.OK)
        {
            cache.Abandon(fill);
            if (response.StatusCode is System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden)
            {
                grants.RecordRefusal(upstream.UpstreamAuthorization(target, context.Request), target.Authority, route.Name);
                challenges.LearnFromRefusal(target.Authority, response);
            }

            using (response)
            {
                if (RegistryUpstream.IsUpstreamFault(response.StatusCode))
                {
                    metrics.UpstreamError(((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
            }
        }

        // Upstream served this digest under this repository to this client: remember both facts.
        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        cache.Index.Link(target.Authority, route.Name, key, cache.Now);
        grants.RecordSuccess(authorization, target.Authority, route.Name);
        if (!cache.StartFill(fill, response, RegistryUpstream.MediaTypeOf(response) ?? "application/octet-stream"))
        {
            using (response)
            {
                return new("bypass", await RegistryResponses.RelayAsync(context, response, "bypass"));
            }
        }

        return null;
    }

    /// <summary>The cache cannot store right now: relay upstream's answer untouched (fail open).</summary>
    private async Task<RegistryOutcome> BypassAsync(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        using var request = BlobRequest(HttpMethod.Get, context, target, route);
        if (context.Request.Headers.Range.Count > 0)
        {
            request.Headers.TryAddWithoutValidation("Range", context.Request.Headers.Range.ToString());
        }

        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout * 3, context.RequestAborted);
            return new("bypass", await RegistryResponses.RelayAsync(context, response, "bypass"));
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            RegistryResponses.SetResult(context.Response, "error");
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unavailable, $"upstream {target.Authority}: {HttpForwarder.Describe(ex).Reason}", context.RequestAborted);
            return new("error", 0);
        }
    }

    /// <summary>
    /// Continues a response whose head and first bytes came from a fill the disk failed: asks upstream
    /// for the rest with a Range and relays exactly the missing bytes. Returns the bytes relayed.
    /// </summary>
    private async Task<long> ResumeFromUpstreamAsync(HttpContext context, InterceptTarget target, BlobRoute route, long offset, long remaining)
    {
        using var request = BlobRequest(HttpMethod.Get, context, target, route);
        request.Headers.TryAddWithoutValidation("Range", $"bytes={offset}-");
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout * 3, context.RequestAborted);
            if (response.StatusCode is not (System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.PartialContent))
            {
                context.Abort();
                return 0;
            }

            await using var body = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            if (response.StatusCode == System.Net.HttpStatusCode.OK)
            {
                await SkipAsync(body, offset, context.RequestAborted); // upstream ignored the Range
            }

            var copy = await StreamCopier.CopyAsync(new LimitedStream(body, remaining), context.Response.Body, context.RequestAborted);
            if (copy.Failure != CopyFailure.None || copy.Bytes != remaining)
            {
                context.Abort();
            }

            return copy.Bytes;
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
        {
            context.Abort();
            return 0;
        }
    }

    private static async Task SkipAsync(Stream body, long count, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        while (count > 0)
        {
            var read = await body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, count)), cancellationToken);
            if (read == 0)
            {
                throw new IOException("upstream body ended early");
            }

            count -= read;
        }
    }

    private Task<long> ServeCommittedAsync(HttpContext context, CachedBlob blob, string result) =>
        RegistryResponses.ServeCachedAsync(context, cache, metrics, blob, result, manifest: false);

    private async Task<RegistryOutcome> ForwardHeadAsync(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        using var request = BlobRequest(HttpMethod.Head, context, target, route);
        try
        {
            using var response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout, context.RequestAborted);
            return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            RegistryResponses.SetResult(context.Response, "error");
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.BlobUnknown, "blob not cached and upstream unreachable", context.RequestAborted);
            return new("error", 0);
        }
    }

    private async Task<RegistryOutcome> DenyAsync(HttpContext context, InterceptTarget target, BlobRoute route, AccessResult access)
    {
        if (access.Response is { } refusal)
        {
            using (refusal)
            {
                await RegistryResponses.RefuseAsync(context, refusal, RegistryErrorCode.BlobUnknown);
            }

            return new("refused", 0);
        }

        // Unavailable: no proof, no upstream. A client without credentials is asked for them, as the
        // registry would; one with credentials learns nothing, not even that the digest is cached.
        RegistryResponses.SetResult(context.Response, "refused");
        if (context.Request.Headers.Authorization.Count == 0
            && RegistryResponses.ScopedChallenge(cache.Index.FindChallenge(target.Authority)?.WwwAuthenticate, route.Name) is { } challenge)
        {
            context.Response.Headers.WWWAuthenticate = challenge;
            await RegistryError.WriteAsync(context.Response, RegistryErrorCode.Unauthorized, "authentication required", context.RequestAborted);
            return new("refused", 0);
        }

        await RegistryError.WriteAsync(context.Response, RegistryErrorCode.BlobUnknown, "blob unknown to registry", context.RequestAborted);
        return new("refused", 0);
    }

    /// <summary>This blob at upstream, with the client's credentials; bodies over HTTP/1.1.</summary>
    private HttpRequestMessage BlobRequest(HttpMethod method, HttpContext context, InterceptTarget target, BlobRoute route) =>
        upstream.CreateRequest(method, target, $"/v2/{route.Name}/blobs/{route.Digest}", context.Request, bulk: method == HttpMethod.Get);
}
