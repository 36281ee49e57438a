using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Tunneling;

namespace MitmCache.Registry;

/// <summary>
/// A tier asked before upstream when a blob read must fill (the S3 tier's bucket), registered in the host's container:
/// <see cref="BlobEndpoint"/> chains every registered tier's origin in front of <see cref="UpstreamBlobOrigin"/>
/// (<see cref="OriginChain"/>). Upstream itself, and parent proxies, are not tiers here: parents are reached at the HTTP
/// level (<see cref="Upstream.TierHandler"/>) by the upstream origin's requests.
/// </summary>
internal interface IBlobOriginTier
{
    /// <summary>
    /// This tier's origin for one read, built from the live request (take from it now what the fill may need later);
    /// null when it has nothing to offer for it.
    /// </summary>
    IBlobOrigin? OriginFor(HttpContext context, InterceptTarget target, BlobRoute route);
}
