using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// The blob store as the origin of a fill, asked on a local miss before upstream. The one door for blobs
/// (<c>BlobCache</c>) calls it from the fill it starts for the digest:
/// <code>
/// var access = origin.Capture(context, target, repository, digest);      // while the request is live, no I/O
/// await using var blob = await origin.OpenAsync(digest, 0, access, ct);  // null: go upstream exactly as before
/// if (blob is not null) fill from blob.Body (blob.Length bytes, blob.MediaType), verifying the digest as always
/// </code>
/// Behind the fill's origin chain (<c>IBlobOrigin.FetchAsync(offset, ct)</c>) it is one adapter: null becomes a fault
/// that is no upstream error (the chain asks upstream next), a blob becomes a body that proves no access (a bucket's copy
/// earns no link and no grant), owning <c>access</c>.
/// Null means the bucket has not got it, may not give it to this client, or is unavailable (the breaker is open, or the
/// engine failed now): the caller goes upstream and nothing else changes. A body is handed out only after
/// <see cref="BucketAccess"/> said yes: a blob found only in the bucket is served under exactly the rules of a local copy.
/// </summary>
internal interface IBucketBlobOrigin
{
    /// <summary>Takes what the access decision needs from the live request (see <see cref="BucketAccess.Capture"/>); dispose it after <see cref="OpenAsync"/>.</summary>
    /// <param name="probe">False when upstream already failed this request: only the offline rules apply.</param>
    BucketAccess Capture(HttpContext context, InterceptTarget target, string repository, Digest digest, bool probe = true);

    /// <summary>This request's fill origin for the bucket (<see cref="BucketFillOrigin"/>), to put before upstream in its chain.</summary>
    IBlobOrigin ForFill(RegistryUpstream upstream, HttpContext context, InterceptTarget target, BlobRoute route);

    /// <summary>
    /// The bucket's copy of <paramref name="digest"/> from <paramref name="offset"/>, or null (go upstream). From 0 the body
    /// is verified as it streams; from further on (the rest of a response the disk cut short) it is relayed as it comes.
    /// </summary>
    Task<BucketBlob?> OpenAsync(Digest digest, long offset, BucketAccess access, CancellationToken ct);
}

/// <summary>
/// A blob opened in the bucket for a fill. <see cref="Body"/> yields the blob's <see cref="Length"/> bytes from <see cref="Offset"/>,
/// and from offset 0 it is verified as it streams:
/// when its bytes do not match the digest, its end is never a clean end: the object is deleted from the bucket and counted,
/// and the last read throws <see cref="IOException"/> (so the fill commits nothing and the next request goes upstream).
/// A body that breaks off or stalls throws <see cref="IOException"/> too, and opens the breaker.
/// </summary>
internal sealed record BucketBlob(Stream Body, long Offset, long Length, string MediaType, string Reason) : IAsyncDisposable
{
    public ValueTask DisposeAsync() => Body.DisposeAsync();
}

/// <inheritdoc cref="IBucketBlobOrigin"/>
internal sealed class BucketBlobOrigin(S3BlobTier tier, RegistryAuthorizer authorizer, RepositoryVisibility visibility, LinkRecords links, ILogger<BucketBlobOrigin> logger)
    : IBucketBlobOrigin
{
    private const string DefaultMediaType = "application/octet-stream";

    public IBlobOrigin ForFill(RegistryUpstream upstream, HttpContext context, InterceptTarget target, BlobRoute route) =>
        new BucketFillOrigin(this, upstream, context, target, route, logger);

    public BucketAccess Capture(HttpContext context, InterceptTarget target, string repository, Digest digest, bool probe = true) =>
        BucketAccess.Capture(authorizer, visibility, context, target, repository, digest, probe, links.IsLinked(target.Authority, repository, digest));

    public async Task<BucketBlob?> OpenAsync(Digest digest, long offset, BucketAccess access, CancellationToken ct)
    {
        // HEAD first: the decision may ask upstream (seconds), and a GET's body must not sit unread meanwhile.
        var head = await tier.HeadAsync(digest, ct);
        if (head.Outcome != TierOutcome.Found)
        {
            if (head.Outcome == TierOutcome.NotFound)
            {
                tier.Metrics.Miss("blob");
            }

            return null;
        }

        var (allowed, reason) = await access.DecideAsync(tier, digest, head.Length, ct);
        if (!allowed)
        {
            logger.BlobStoreRefused(digest.ToString(), reason);
            return null;
        }

        var read = await tier.OpenReadAsync(digest, offset, ct);
        if (read.Body is not { } body)
        {
            return null; // deleted meanwhile (counted as a miss), or the engine failed now
        }

        logger.BlobStoreFilling(digest.ToString(), reason);
        // An engine that ignores Range sends the whole object: then it is verified like any read from the start.
        var verified = read.Offset == 0 ? new VerifyingReadStream(body, digest, tier) : body;
        return new BucketBlob(verified, read.Offset, read.Length, read.MediaType ?? head.MediaType ?? DefaultMediaType, reason);
    }
}
