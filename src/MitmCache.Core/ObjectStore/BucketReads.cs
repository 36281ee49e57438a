using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// The read side of the blob store for manifests while upstream is down: read whole and verified, a mismatch deleting the
/// object. The caller serves one only after <see cref="BucketAccess"/> has said this client may have it. Blobs (layers)
/// come through <see cref="BucketBlobOrigin"/>, as the origin of a fill.
/// </summary>
internal sealed class BucketReads(S3BlobTier tier)
{
    public S3BlobTier Tier => tier;

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
