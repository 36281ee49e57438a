using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// <c>GET</c>/<c>HEAD /v2/&lt;name&gt;/blobs/&lt;digest&gt;</c>.
/// Hit: authorize (see <see cref="RegistryAuthorizer"/>), then stream the file (Range supported). Miss: one
/// upstream fetch per digest; the client that starts it and every client of the same repository that
/// joins stream from the growing file. A cached blob this client may not read, or one not linked to this
/// repository, is asked for upstream exactly as if it were not cached: a refused client gets upstream's
/// own answer (or, upstream down, the error an uncached digest gets), and learns nothing about the cache.
/// </summary>
internal sealed class BlobEndpoint(BlobCache cache, RegistryUpstream upstream, RegistryAuthorizer authorizer, AccessGrants grants, RegistryChallenges challenges, CacheMetrics metrics, LinkRecords links)
{
    private const int MaxAttempts = 3;

    /// <summary>The repository each fill in flight fetches through: only its clients may share the fill.</summary>
    private readonly ConditionalWeakTable<BlobFill, string> _origins = new();

    public async Task<RegistryOutcome> HandleAsync(HttpContext context, InterceptTarget target, BlobRoute route)
    {
        var digest = route.Digest;
        if (cache.TryGet(digest) is { } hit && await ServeHitAsync(context, target, route, hit) is { } answered)
        {
            return answered;
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            return await ForwardHeadAsync(context, target, route);
        }

        if (cache.IsStorageDegraded)
        {
            return await BypassAsync(context, target, route, "bypass");
        }

        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var (fill, owner) = cache.JoinOrStart(digest);
            string result;
            if (owner)
            {
                _origins.AddOrUpdate(fill, Origin(target, route));
                var started = await StartFillAsync(context, target, route, fill);
                if (started is not null)
                {
                    return started.Value;
                }

                result = "miss";
            }
            else
            {
                var joined = await fill.Head.WaitAsync(context.RequestAborted);
                if (joined is null)
                {
                    continue; // abandoned before the body (the owner was refused): try on our own account
                }

                if (!await MayJoinAsync(context, target, route, fill, joined))
                {
                    return await BypassAsync(context, target, route, "bypass");
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

    /// <summary>
    /// A cached blob, for a repository it is linked to (or, its bytes being public already, any repository
    /// upstream confirms it for). Served when this client may read it; otherwise null, to go on exactly as
    /// a miss, unless upstream cannot be asked (then the answer an uncached digest gets) or the request is
    /// a HEAD (then the probe's answer is the one a HEAD miss relays).
    /// </summary>
    private async Task<RegistryOutcome?> ServeHitAsync(HttpContext context, InterceptTarget target, BlobRoute route, CachedBlob hit)
    {
        var digest = route.Digest;
        var linked = links.IsLinked(target.Authority, route.Name, digest.ToString());
        if (!linked && !authorizer.IsPublicAnywhere(digest))
        {
            return null; // its bytes must come through this repository first
        }

        if (linked && authorizer.IsAuthorized(context, target, route.Name))
        {
            return new("hit", await ServeCommittedAsync(context, hit, "hit"));
        }

        using var probe = await authorizer.ProbeAsync(context, target, route.Name, digest, hit.Record.Size);
        if (probe.Outcome == ProbeOutcome.Confirmed)
        {
            if (!linked)
            {
                links.Link(target.Authority, route.Name, digest.ToString(), cache.Now); // public bytes: the answer is enough
            }

            return new("hit", await ServeCommittedAsync(context, hit, "hit"));
        }

        if (probe.Outcome is ProbeOutcome.Fault or ProbeOutcome.Unreachable && authorizer.AuthorizeOffline(context, target, route.Name, digest))
        {
            return new("stale", await ServeCommittedAsync(context, hit, "stale"));
        }

        if (probe.Outcome == ProbeOutcome.Unreachable)
        {
            return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, probe.Reason, "refused");
        }

        if (HttpMethods.IsHead(context.Request.Method))
        {
            // The probe was the very request a HEAD miss forwards: its answer is the one to give.
            await RegistryResponses.RelayAsync(context, probe.Response!, "forwarded");
            return new("refused", 0);
        }

        return null; // not confirmed: fetch it through this repository as any miss, with this client's credentials
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
            if (context.RequestAborted.IsCancellationRequested)
            {
                return new("aborted", 0); // the client left: nothing is known about upstream
            }

            metrics.UpstreamError(ex is TimeoutException ? "timeout" : "connect");

            return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, HttpForwarder.Describe(ex).Reason);
        }

        if (response.StatusCode != System.Net.HttpStatusCode.OK)
        {
            cache.Abandon(fill);
            RecordRefusal(context, target, route, response);

            using (response)
            {
                if (RegistryUpstream.IsUpstreamFault(response.StatusCode))
                {
                    metrics.UpstreamError(((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture));
                }

                return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
            }
        }

        // Upstream is serving this digest under this repository to this client. Both facts are kept once the
        // bytes are verified against the digest: a link is only ever earned by the blob itself.
        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        void Committed()
        {
            links.Link(target.Authority, route.Name, key, cache.Now);
            grants.RecordSuccess(authorization, target.Authority, route.Name);
        }

        if (!cache.StartFill(fill, response, RegistryUpstream.MediaTypeOf(response) ?? "application/octet-stream", Committed))
        {
            using (response)
            {
                return new("bypass", await RegistryResponses.RelayAsync(context, response, "bypass"));
            }
        }

        return null;
    }

    /// <summary>
    /// A joiner shares the fill only if it fetches through the same repository (the link it will earn) and
    /// this client may read that repository: already known, or upstream says so for a blob of that size.
    /// </summary>
    private async Task<bool> MayJoinAsync(HttpContext context, InterceptTarget target, BlobRoute route, BlobFill fill, FillHead head)
    {
        if (!_origins.TryGetValue(fill, out var origin) || origin != Origin(target, route))
        {
            return false;
        }

        if (authorizer.IsAuthorized(context, target, route.Name))
        {
            return true;
        }

        using var probe = await authorizer.ProbeAsync(context, target, route.Name, route.Digest, head.Size);
        return probe.Outcome == ProbeOutcome.Confirmed;
    }

    private static string Origin(InterceptTarget target, BlobRoute route) => $"{target.Authority}/{route.Name}";

    /// <summary>
    /// Relays upstream's answer untouched, caching nothing: when the cache cannot store right now (fail open),
    /// or for a client that may not share the fill in flight. Refusals are relayed as any miss relays them.
    /// </summary>
    private async Task<RegistryOutcome> BypassAsync(HttpContext context, InterceptTarget target, BlobRoute route, string result)
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

            RecordRefusal(context, target, route, response);
            return new("forwarded", await RegistryResponses.RelayAsync(context, response, "forwarded"));
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, HttpForwarder.Describe(ex).Reason);
        }
    }

    private void RecordRefusal(HttpContext context, InterceptTarget target, BlobRoute route, HttpResponseMessage response)
    {
        if (response.StatusCode is System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden)
        {
            grants.RecordRefusal(upstream.UpstreamAuthorization(target, context.Request), target.Authority, route.Name);
            challenges.LearnFromRefusal(target.Authority, response);
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
            return await RegistryResponses.UnreachableAsync(context, challenges, authorizer, target, route.Name, HttpForwarder.Describe(ex).Reason);
        }
    }

    /// <summary>This blob at upstream, with the client's credentials; bodies over HTTP/1.1.</summary>
    private HttpRequestMessage BlobRequest(HttpMethod method, HttpContext context, InterceptTarget target, BlobRoute route) =>
        upstream.CreateRequest(method, target, $"/v2/{route.Name}/blobs/{route.Digest}", context.Request, bulk: method == HttpMethod.Get);
}
