namespace MitmCache.Tests.Common;

/// <summary>An OCI image index or Docker manifest list made by <see cref="OciImageBuilder.Index"/>.</summary>
public sealed record BuiltIndex
{
    public required byte[] Bytes { get; init; }

    public required string Digest { get; init; }

    public required string MediaType { get; init; }

    /// <summary>The images the index lists, in order.</summary>
    public required IReadOnlyList<BuiltImage> Platforms { get; init; }
}
