using System.Net;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

/// <summary>
/// The registry itself, asked with the client's own credentials: <c>GET /v2/&lt;name&gt;/blobs/&lt;digest&gt;</c>, redirects
/// followed (to CDNs), over HTTP/1.1. Its 200 proves the client may read the repository. A refusal (401/403) drops the
/// credential's grant and teaches the registry's challenge before it is handed back. Used only while the request lasts.
/// </summary>
internal sealed class UpstreamBlobOrigin(RegistryUpstream upstream, AccessGrants grants, RegistryChallenges challenges,
    HttpContext context, InterceptTarget target, BlobRoute route) : IBlobOrigin
{
    public async Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
    {
        using var request = upstream.CreateRequest(HttpMethod.Get, target, $"/v2/{route.Name}/blobs/{route.Digest}", context.Request, bulk: true);
        if (offset > 0)
        {
            request.Headers.TryAddWithoutValidation("Range", $"bytes={offset}-");
        }

        HttpResponseMessage response;
        try
        {
            // Blob heads come through redirects to CDNs: allow them three times the manifest timeout.
            response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout * 3, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw; // the client left: nothing was learned about upstream
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
        {
            return new OriginFault(ex is TimeoutException ? "timeout" : "connect", HttpForwarder.Describe(ex).Reason);
        }

        var whole = response.StatusCode == HttpStatusCode.OK;
        var part = offset > 0 && response.StatusCode == HttpStatusCode.PartialContent;
        if (!whole && !part)
        {
            Refused(response);
            return new OriginRefusal(response);
        }

        try
        {
            var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            var length = part ? response.Content.Headers.ContentRange?.Length : response.Content.Headers.ContentLength;
            if (whole && offset > 0)
            {
                // Upstream ignored the Range: skip to where the caller is.
                var skipped = await StreamCopier.CopyAsync(new LimitedStream(body, offset), Stream.Null, cancellationToken);
                if (skipped.Failure != CopyFailure.None || skipped.Bytes != offset)
                {
                    response.Dispose();
                    return new OriginFault("truncated", "upstream body ended early");
                }
            }

            return new OriginBody(body, offset, length, RegistryUpstream.MediaTypeOf(response) ?? "application/octet-stream", ProvesAccess: whole || part, response);
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
        {
            response.Dispose();
            cancellationToken.ThrowIfCancellationRequested();
            return new OriginFault("connect", HttpForwarder.Describe(ex).Reason);
        }
    }

    /// <summary>A refusal with these credentials: the grant goes, and the registry's challenge is learned.</summary>
    public void Refused(HttpResponseMessage response)
    {
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            grants.RecordRefusal(upstream.UpstreamAuthorization(target, context.Request), target.Authority, route.Name);
            challenges.LearnFromRefusal(target.Authority, response);
        }
    }
}
