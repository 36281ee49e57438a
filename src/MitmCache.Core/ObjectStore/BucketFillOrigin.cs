using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// The blob store as one origin of a request's fill (<see cref="IBlobOrigin"/>), put before upstream in its
/// <see cref="OriginChain"/>: the bucket's copy when it has one this client may have (<see cref="IBucketBlobOrigin"/>),
/// else a fault that is no upstream error, so the chain asks upstream exactly as for any miss. A bucket's copy proves
/// nothing about the client, so it earns no link and no grant (<see cref="OriginBody.ProvesAccess"/> false). The access
/// decision is taken when the cache asks, while the request is live. So is the upstream request that finishes the body
/// if the engine fails in the middle (<see cref="ResumingReadStream"/>): built from the client's request then, sent only
/// if needed, so the fill, which may outlive the client, never touches the client's request again.
/// </summary>
internal sealed class BucketFillOrigin(IBucketBlobOrigin bucket, RegistryUpstream upstream, HttpContext context, InterceptTarget target, BlobRoute route,
    ILogger logger) : IBlobOrigin
{
    public async Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
    {
        BucketBlob? blob;
        using (var access = bucket.Capture(context, target, route.Name, route.Digest))
        {
            blob = await bucket.OpenAsync(route.Digest, offset, access, cancellationToken);
        }

        if (blob is null)
        {
            return new OriginFault("", "not in the blob store, not for this client, or the blob store unavailable");
        }

        var rest = upstream.CreateRequest(HttpMethod.Get, target, $"/v2/{route.Name}/blobs/{route.Digest}", context.Request, bulk: true);
        var body = new ResumingReadStream(blob.Body, blob.Offset, blob.Length, (at, ct) => RestFromUpstreamAsync(rest, at, ct),
            at => logger.BlobStoreResumedUpstream(route.Digest.ToString(), at));
        return new OriginBody(body, blob.Offset, blob.Length, blob.MediaType, ProvesAccess: false, rest);
    }

    /// <summary>The blob from <paramref name="offset"/> at upstream (a 206 to the Range), or null.</summary>
    private async Task<Stream?> RestFromUpstreamAsync(HttpRequestMessage request, long offset, CancellationToken ct)
    {
        request.Headers.TryAddWithoutValidation("Range", $"bytes={offset}-");
        HttpResponseMessage? response = null;
        try
        {
            response = await upstream.SendAsync(request, followRedirects: true, upstream.Timeout * 3, ct);
            if (response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From == offset)
            {
                return await response.Content.ReadAsStreamAsync(ct); // disposing it releases the response
            }
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex) || ex is OperationCanceledException)
        {
        }

        response?.Dispose();
        return null;
    }
}

/// <summary>The blob store as a tier of every blob read's origin chain (<see cref="IBlobOriginTier"/>), asked before upstream.</summary>
internal sealed class BucketOriginTier(IBucketBlobOrigin bucket, RegistryUpstream upstream) : IBlobOriginTier
{
    public IBlobOrigin? OriginFor(HttpContext context, InterceptTarget target, BlobRoute route) => bucket.ForFill(upstream, context, target, route);
}
