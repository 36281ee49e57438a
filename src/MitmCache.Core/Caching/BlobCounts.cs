using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>Blob records in the index, and how many of them are manifests or indexes.</summary>
internal readonly record struct BlobCounts(long Total, long Manifests)
{
    public long Others => Total - Manifests;

    public BlobCounts With(BlobRecord? record) => record is null ? this : new(Total + 1, Manifests + ManifestCount(record));

    public BlobCounts Without(BlobRecord? record) => record is null ? this : new(Total - 1, Manifests - ManifestCount(record));

    private static int ManifestCount(BlobRecord record) => MediaTypes.IsManifest(record.MediaType) ? 1 : 0;
}
