namespace MitmCache.Registry;

/// <summary>
/// Media types of OCI and Docker images, and Accept-header helpers.
/// Sources: OCI image-spec media-types.md; Docker image manifest v2 schema 2.
/// </summary>
internal static class MediaTypes
{
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";
    public const string OciConfig = "application/vnd.oci.image.config.v1+json";
    public const string OciLayer = "application/vnd.oci.image.layer.v1.tar";
    public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    public const string OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
    public const string OciEmpty = "application/vnd.oci.empty.v1+json";

    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
    public const string DockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    public const string DockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    public const string DockerManifestV1 = "application/vnd.docker.distribution.manifest.v1+json";
    public const string DockerManifestV1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// <summary>True for an OCI index or a Docker manifest list. Parameters and case are ignored.</summary>
    public static bool IsIndex(string? mediaType) => IsIndexEssence(Essence(mediaType));

    /// <summary>True for any manifest or index media type listed here. Parameters and case are ignored.</summary>
    public static bool IsManifest(string? mediaType)
    {
        var type = Essence(mediaType);
        return IsIndexEssence(type)
            || type.Equals(OciManifest, StringComparison.OrdinalIgnoreCase)
            || type.Equals(DockerManifest, StringComparison.OrdinalIgnoreCase)
            || type.Equals(DockerManifestV1, StringComparison.OrdinalIgnoreCase)
            || type.Equals(DockerManifestV1Signed, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// A stable cache-key form of one or several Accept headers: entries split on ',', trimmed,
    /// parameters (<c>;q=...</c>) dropped, lower-cased, de-duplicated, sorted ordinally, joined with ','.
    /// No Accept (or only empty entries) gives the empty string.
    /// </summary>
    public static string AcceptKey(IEnumerable<string?> acceptHeaderValues)
    {
        var types = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in EnumerateTypes(acceptHeaderValues))
        {
            types.Add(type);
        }

        return string.Join(',', types);
    }

    /// <summary>
    /// True when there is no Accept entry, an entry is <c>*/*</c> or <c>type/*</c> for the type, or the type is listed.
    /// Parameters, including <c>q=0</c>, are ignored, consistent with <see cref="AcceptKey"/>.
    /// </summary>
    public static bool Accepts(IEnumerable<string?> acceptHeaderValues, string mediaType)
    {
        var wanted = Essence(mediaType).ToLowerInvariant();
        var slash = wanted.IndexOf('/', StringComparison.Ordinal);
        var typeWildcard = slash > 0 ? string.Concat(wanted.AsSpan(0, slash), "/*") : null;

        var any = false;
        foreach (var type in EnumerateTypes(acceptHeaderValues))
        {
            any = true;
            if (type == "*/*" || type == wanted || type == typeWildcard)
            {
                return true;
            }
        }

        return !any;
    }

    private static IEnumerable<string> EnumerateTypes(IEnumerable<string?> acceptHeaderValues)
    {
        ArgumentNullException.ThrowIfNull(acceptHeaderValues);
        foreach (var header in acceptHeaderValues)
        {
            if (string.IsNullOrEmpty(header))
            {
                continue;
            }

            foreach (var entry in header.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                var type = Essence(entry);
                if (type.Length > 0)
                {
                    yield return type.ToLowerInvariant();
                }
            }
        }
    }

    private static bool IsIndexEssence(string type)
    {
        return type.Equals(OciIndex, StringComparison.OrdinalIgnoreCase)
            || type.Equals(DockerManifestList, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The media type without parameters and surrounding whitespace.</summary>
    private static string Essence(string? mediaType)
    {
        if (mediaType is null)
        {
            return string.Empty;
        }

        var semicolon = mediaType.IndexOf(';', StringComparison.Ordinal);
        return (semicolon < 0 ? mediaType : mediaType[..semicolon]).Trim();
    }
}
