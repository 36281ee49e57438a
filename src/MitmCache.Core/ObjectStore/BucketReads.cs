using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// The read side of the blob store, for the fill path (an origin asked before upstream) and for manifests while upstream is
/// down. Every body handed out is either verified already (manifests, read whole) or verified as it streams, with a
/// mismatch deleting the object and failing the read (<see cref="VerifyingReadStream"/>). Nothing is handed out before
/// <see cref="BucketAccess"/> has said this client may have it.
/// </summary>
internal sealed class BucketReads(S3BlobTier tier, ILogger<BucketReads> logger)
{
    public string Name => $"blob store {tier.Settings.Location}";

    public S3BlobTier Tier => tier;

    /// <summary>
    /// The blob from <paramref name="offset"/>, for a fill: null with the reason when the bucket has not got it, is
    /// unavailable, or this client may not have its copy (then upstream is asked exactly as for any miss).
    /// </summary>
    public async Task<(TierRead? Read, string Reason)> OpenForFillAsync(Digest digest, long offset, BucketAccess access, CancellationToken ct)
    {
        var head = await tier.HeadAsync(digest, ct);
        if (head.Outcome != TierOutcome.Found)
        {
            return (null, head.Outcome == TierOutcome.NotFound ? "not in the blob store" : "the blob store is unavailable");
        }

        var (allowed, reason) = await access.DecideAsync(tier, digest, head.Length, ct);
        if (!allowed)
        {
            return (null, $"the blob store's copy is not for this client: {reason}");
        }

        var read = await tier.OpenReadAsync(digest, offset, ct);
        if (read.Body is not { } body)
        {
            return (null, read.Outcome == TierOutcome.NotFound ? "not in the blob store" : "the blob store is unavailable");
        }

        logger.BlobStoreFilling(digest.ToString(), reason);
        // From its start the object is verified as it streams; a resumed read is checked by the fill over the whole blob.
        return read.Offset == 0
            ? (new TierRead(new VerifyingReadStream(body, digest, tier), read.Length, 0, read.MediaType), reason)
            : (read, reason);
    }

    /// <summary>
    /// A manifest read whole (at most <see cref="BoundedContent.MaxManifestBytes"/>) and verified; null when the bucket has
    /// not got it, it is unavailable, too large, or corrupt (then deleted and counted).
    /// </summary>
    public async Task<(byte[] Body, string? MediaType)?> ReadManifestAsync(Digest digest, CancellationToken ct)
    {
        await using var read = await tier.OpenReadAsync(digest, 0, ct);
        if (read.Body is not { } body || read.Length > BoundedContent.MaxManifestBytes)
        {
            return null;
        }

        var bytes = new byte[read.Length];
        try
        {
            await body.ReadExactlyAsync(bytes, ct);
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException)
        {
            return null; // the engine failed mid-body: the breaker knows
        }

        using var hash = digest.CreateHash();
        hash.AppendData(bytes);
        if (!digest.Matches(hash.GetHashAndReset()))
        {
            await tier.DeleteCorruptAsync(digest, ct);
            return null;
        }

        return (bytes, read.MediaType);
    }
}
