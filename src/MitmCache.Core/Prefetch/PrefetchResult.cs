using MitmCache.Registry;

namespace MitmCache.Prefetch;

/// <summary>One image's outcome. <see cref="Error"/> is null when every manifest and blob came through and verified.</summary>
/// <param name="Digest">The digest of the manifest or index the reference resolved to.</param>
internal sealed record PrefetchResult(ImageReference Image, Digest? Digest, int Manifests, int Blobs, long Bytes, string? Error)
{
    public bool Succeeded => Error is null;
}
