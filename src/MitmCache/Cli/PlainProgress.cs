using MitmCache.Prefetch;
using MitmCache.Registry;

namespace MitmCache.Cli;

/// <summary>Prefetch progress as plain lines (CI logs, pipes): one per manifest and blob as it completes.</summary>
internal sealed class PlainProgress(TextWriter output) : IPrefetchProgress
{
    private readonly Lock _gate = new();

    public void ImageStarted(ImageReference image) => Write($"prefetch {image}");

    public void ManifestFetched(ImageReference image, Digest digest, string mediaType, long size, string? cacheResult) =>
        Write($"  manifest {digest} {mediaType} {TextFormat.Size(size)} {cacheResult ?? "-"}");

    public void BlobStarted(Digest digest, string kind, long size)
    {
    }

    public void BlobProgress(Digest digest, long bytes)
    {
    }

    public void BlobCompleted(Digest digest, long bytes, string? cacheResult) =>
        Write($"  blob     {digest} {TextFormat.Size(bytes)} {cacheResult ?? "-"}");

    public void ImageCompleted(PrefetchResult result) => Write(Summary(result));

    public static string Summary(PrefetchResult result) => result.Succeeded
        ? $"ok {result.Image} {result.Digest} ({Plural(result.Manifests, "manifest")}, {Plural(result.Blobs, "blob")}, {TextFormat.Size(result.Bytes)})"
        : $"FAILED {result.Image}: {result.Error}";

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private void Write(string line)
    {
        lock (_gate)
        {
            output.WriteLine(line);
        }
    }
}
