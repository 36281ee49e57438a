namespace MitmCache.Tests.Common;

/// <summary>A single-platform image made by <see cref="OciImageBuilder.Build"/>, all in memory.</summary>
public sealed record BuiltImage
{
    public required byte[] ConfigJson { get; init; }

    public required string ConfigDigest { get; init; }

    /// <summary>Compressed layer blobs (tar+gzip) with their digests, bottom layer first.</summary>
    public required IReadOnlyList<(string Digest, byte[] Bytes)> Layers { get; init; }

    public required byte[] Manifest { get; init; }

    public required string ManifestDigest { get; init; }

    /// <summary>The manifest's media type (OCI or Docker schema 2).</summary>
    public required string MediaType { get; init; }

    public required string Os { get; init; }

    public required string Architecture { get; init; }

    /// <summary>Config and layers: every blob the manifest refers to.</summary>
    public IEnumerable<(string Digest, byte[] Bytes)> Blobs => Layers.Prepend((ConfigDigest, ConfigJson));
}
