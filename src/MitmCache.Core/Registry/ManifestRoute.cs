namespace MitmCache.Registry;

/// <summary>
/// <c>/v2/&lt;name&gt;/manifests/&lt;reference&gt;</c>, with both parts validated.
/// <see cref="Digest"/> is set when the reference is a digest; otherwise <see cref="Reference"/> is a tag.
/// </summary>
internal sealed record ManifestRoute(string Name, string Reference, Digest? Digest) : RegistryRoute
{
    /// <summary>The tag, or null when the reference is a digest.</summary>
    public string? Tag => Digest is null ? Reference : null;
}
