using MitmCache.Registry;

namespace MitmCache.Prefetch;

/// <summary>
/// What <see cref="ImagePrefetcher"/> reports as it goes. Two renderings exist (the CLI's progress bars on a
/// terminal, plain lines otherwise). Blob calls come from several threads at once. A cache result is the
/// proxy's <c>X-MitmCache</c> answer (hit, miss, coalesced, ...), null if the proxy did not say.
/// </summary>
internal interface IPrefetchProgress
{
    void ImageStarted(ImageReference image);

    void ManifestFetched(ImageReference image, Digest digest, string mediaType, long size, string? cacheResult);

    /// <param name="kind"><c>config</c> or <c>layer</c>.</param>
    void BlobStarted(Digest digest, string kind, long size);

    /// <param name="bytes">Bytes read so far.</param>
    void BlobProgress(Digest digest, long bytes);

    void BlobCompleted(Digest digest, long bytes, string? cacheResult);

    void ImageCompleted(PrefetchResult result);
}
