namespace MitmCache.Registry;

/// <summary>
/// What a <c>/v2/</c> request path addresses. Match on the sealed subtypes:
/// <see cref="PingRoute"/>, <see cref="BlobRoute"/>, <see cref="ManifestRoute"/>,
/// <see cref="OtherRoute"/> (forward untouched) and <see cref="InvalidRoute"/> (answer with an error).
/// </summary>
internal abstract record RegistryRoute
{
    private const string Prefix = "/v2/";

    private protected RegistryRoute()
    {
    }

    /// <summary>
    /// Parses the raw request target path: still percent-encoded, without the query string.
    /// Paths not under <c>/v2</c> are <see cref="InvalidRoute"/>; callers should only pass registry paths.
    /// </summary>
    /// <remarks>
    /// Rules, in order:
    /// <list type="number">
    /// <item>Only printable ASCII without backslash; no empty (<c>//</c>), <c>.</c> or <c>..</c> segments
    /// (a single trailing slash is allowed, and makes the route <see cref="OtherRoute"/>).</item>
    /// <item><c>.../manifests/&lt;ref&gt;</c> and <c>.../blobs/&lt;digest&gt;</c> are matched on the last two
    /// segments, like distribution's router (the name is greedy, the reference has no '/').
    /// <c>blobs/uploads</c> is a push and therefore <see cref="OtherRoute"/>.</item>
    /// <item>Names, tags and digests are checked against the spec grammar. None of them admit '%',
    /// so encoded separators or dots (<c>%2f</c>, <c>%2e%2e</c>) never reach a blob or manifest route.</item>
    /// </list>
    /// </remarks>
    public static RegistryRoute Parse(ReadOnlySpan<char> rawPath)
    {
        if (rawPath is "/v2" or Prefix)
        {
            return PingRoute.Instance;
        }

        if (!rawPath.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return new InvalidRoute(RegistryErrorCode.NameInvalid, "path is not under /v2/");
        }

        var rest = rawPath[Prefix.Length..];
        foreach (var c in rest)
        {
            if (c is <= ' ' or >= '\x7f' or '\\')
            {
                return new InvalidRoute(RegistryErrorCode.NameInvalid, "path contains a forbidden character");
            }
        }

        var segments = rest.ToString().Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var segment = segments[i];
            var isTrailingSlash = i == segments.Length - 1 && i > 0;
            if ((segment.Length == 0 && !isTrailingSlash) || segment is "." or "..")
            {
                return new InvalidRoute(RegistryErrorCode.NameInvalid, "path contains an empty or dot segment");
            }
        }

        if (segments.Length < 3)
        {
            return OtherRoute.Instance;
        }

        var kind = segments[^2];
        var last = segments[^1];
        if (kind == "manifests" && last.Length > 0)
        {
            return ParseManifest(segments, last);
        }

        if (kind == "blobs" && last.Length > 0 && last != "uploads")
        {
            return ParseBlob(segments, last);
        }

        return OtherRoute.Instance;
    }

    private static RegistryRoute ParseManifest(string[] segments, string reference)
    {
        var name = string.Join('/', segments, 0, segments.Length - 2);
        if (!RepositoryGrammar.IsValidName(name))
        {
            return new InvalidRoute(RegistryErrorCode.NameInvalid, "invalid repository name");
        }

        // Tags cannot contain ':', so a colon means the client meant a digest.
        if (reference.Contains(':', StringComparison.Ordinal))
        {
            return Digest.TryParse(reference, out var digest)
                ? new ManifestRoute(name, reference, digest)
                : new InvalidRoute(RegistryErrorCode.DigestInvalid, "invalid digest");
        }

        return RepositoryGrammar.IsValidTag(reference)
            ? new ManifestRoute(name, reference, null)
            : new InvalidRoute(RegistryErrorCode.TagInvalid, "invalid tag");
    }

    private static RegistryRoute ParseBlob(string[] segments, string digestText)
    {
        var name = string.Join('/', segments, 0, segments.Length - 2);
        if (!RepositoryGrammar.IsValidName(name))
        {
            return new InvalidRoute(RegistryErrorCode.NameInvalid, "invalid repository name");
        }

        return Digest.TryParse(digestText, out var digest)
            ? new BlobRoute(name, digest)
            : new InvalidRoute(RegistryErrorCode.DigestInvalid, "invalid digest");
    }
}
