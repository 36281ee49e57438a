using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Registry;
using MitmCache.Tunneling;

namespace MitmCache.ObjectStore;

/// <summary>
/// The blob store as one origin of a request's fill (<see cref="IBlobOrigin"/>), put before upstream in its
/// <see cref="OriginChain"/>: the bucket's copy when it has one this client may have (<see cref="IBucketBlobOrigin"/>),
/// else a fault that is no upstream error, so the chain asks upstream exactly as for any miss. A bucket's copy proves
/// nothing about the client, so it earns no link and no grant (<see cref="OriginBody.ProvesAccess"/> false). The access
/// decision is taken when the cache asks, while the request is live, and needs nothing of it afterwards.
/// </summary>
internal sealed class BucketFillOrigin(IBucketBlobOrigin bucket, HttpContext context, InterceptTarget target, string repository, Digest digest) : IBlobOrigin
{
    public async Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken)
    {
        using var access = bucket.Capture(context, target, repository, digest);
        return await bucket.OpenAsync(digest, offset, access, cancellationToken) is { } blob
            ? new OriginBody(blob.Body, blob.Offset, blob.Length, blob.MediaType, ProvesAccess: false)
            : new OriginFault("", "not in the blob store, not for this client, or the blob store unavailable");
    }
}

/// <summary>The blob store as a tier of every blob read's origin chain (<see cref="IBlobOriginTier"/>), asked before upstream.</summary>
internal sealed class BucketOriginTier(IBucketBlobOrigin bucket) : IBlobOriginTier
{
    public IBlobOrigin? OriginFor(HttpContext context, InterceptTarget target, BlobRoute route) =>
        new BucketFillOrigin(bucket, context, target, route.Name, route.Digest);
}
