using System.Text.RegularExpressions;
using MitmCache.Registry;

namespace MitmCache.ObjectStore;

/// <summary>
/// Every object key of the tier, in one place (distribution's <c>registry/storage/paths.go</c> is the model):
/// <code>
/// PREFIX/blobs/sha256/ab/&lt;hex&gt;                               a blob or a manifest, by digest (the local disk's layout)
/// PREFIX/repositories/REGISTRY/REPOSITORY/_tags/TAG          a tag's last confirmed digest and media type (JSON)
/// PREFIX/repositories/REGISTRY/REPOSITORY/_public/sha256/ab/&lt;hex&gt;   the digest's bytes came through this public repository (JSON)
/// PREFIX/registries/REGISTRY/ping                            the registry's answer to /v2/ without credentials (JSON)
/// </code>
/// Keys are built only from a parsed <see cref="Digest"/> or from names that pass the registry grammar, so
/// no client string reaches a key unchecked (a URL would collapse <c>..</c> segments). Repository path
/// components never start with <c>_</c>, so <c>_tags</c> cannot collide with a repository name.
/// </summary>
internal sealed partial class ObjectLayout(string prefix)
{
    private readonly string _root = prefix.Length == 0 ? "" : prefix.TrimEnd('/') + "/";

    public string BlobKey(Digest digest) => $"{_root}blobs/{digest.RelativePath}";

    /// <summary>The tag object's key; null when a name does not pass the grammar (such a tag is not stored).</summary>
    public string? TagKey(string registry, string repository, string tag) =>
        RegistryName().IsMatch(registry) && RepositoryGrammar.IsValidName(repository) && RepositoryGrammar.IsValidTag(tag)
            ? $"{_root}repositories/{registry}/{repository}/_tags/{tag}"
            : null;

    /// <summary>The public link object's key; null when a name does not pass the grammar.</summary>
    public string? PublicLinkKey(string registry, string repository, Digest digest) =>
        RegistryName().IsMatch(registry) && RepositoryGrammar.IsValidName(repository)
            ? $"{_root}repositories/{registry}/{repository}/_public/{digest.RelativePath}"
            : null;

    /// <summary>The registry's shared ping answer's key; null when the name does not pass the grammar.</summary>
    public string? PingKey(string registry) => RegistryName().IsMatch(registry) ? $"{_root}registries/{registry}/ping" : null;

    // host[:port], lowercase, as the proxy names registries (an IPv6 literal is not stored).
    [GeneratedRegex(@"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::[0-9]{1,5})?\z", RegexOptions.CultureInvariant)]
    private static partial Regex RegistryName();
}
