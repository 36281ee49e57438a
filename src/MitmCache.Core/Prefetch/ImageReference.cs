using MitmCache.Registry;

namespace MitmCache.Prefetch;

/// <summary>
/// An image as users write it (<c>busybox</c>, <c>ghcr.io/org/app:1.2</c>, <c>quay.io/x/y@sha256:...</c>),
/// normalized as Docker does it: a first component without a dot, colon or <c>localhost</c> is not a
/// registry, so the image is on Docker Hub (<c>registry-1.docker.io</c>), where one-part names live
/// under <c>library/</c>. No tag and no digest means <c>:latest</c>; with a digest, the digest is pulled.
/// </summary>
internal sealed record ImageReference(string Registry, string Repository, string? Tag, string? Digest)
{
    public const string DockerHub = "registry-1.docker.io";

    private static readonly string[] s_dockerHubAliases = ["docker.io", "index.docker.io", DockerHub];

    /// <summary>What goes in <c>/v2/NAME/manifests/REFERENCE</c>: the digest if there is one, else the tag.</summary>
    public string Reference => Digest ?? Tag ?? "latest";

    public override string ToString() =>
        $"{Registry}/{Repository}{(Tag is null ? "" : ":" + Tag)}{(Digest is null ? "" : "@" + Digest)}";

    public static bool TryParse(string? text, out ImageReference image, out string error)
    {
        image = null!;
        error = "";
        var rest = text?.Trim() ?? "";
        if (rest.Length == 0)
        {
            error = "empty image reference";
            return false;
        }

        string? digest = null;
        var at = rest.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            digest = rest[(at + 1)..];
            rest = rest[..at];
            if (!MitmCache.Registry.Digest.TryParse(digest, out _))
            {
                error = $"'{digest}' is not a digest (sha256:<64 hex>)";
                return false;
            }
        }

        var registry = "docker.io";
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0 && rest[..slash] is var first && (first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost"))
        {
            registry = first.ToLowerInvariant();
            rest = rest[(slash + 1)..];
        }

        string? tag = null;
        var colon = rest.LastIndexOf(':');
        if (colon >= 0 && colon > rest.LastIndexOf('/'))
        {
            tag = rest[(colon + 1)..];
            rest = rest[..colon];
            if (!RepositoryGrammar.IsValidTag(tag))
            {
                error = $"'{tag}' is not a valid tag";
                return false;
            }
        }

        if (s_dockerHubAliases.Contains(registry, StringComparer.Ordinal))
        {
            registry = DockerHub;
            if (!rest.Contains('/', StringComparison.Ordinal))
            {
                rest = "library/" + rest;
            }
        }

        if (!RepositoryGrammar.IsValidName(rest))
        {
            error = $"'{rest}' is not a valid repository name (lowercase letters, digits, separators . _ - /)";
            return false;
        }

        if (!Configuration.ValueParsers.TrySplitHostPort(registry.Contains(':', StringComparison.Ordinal) ? registry : registry + ":443", out var host, out _)
            || !Tunneling.HostPolicy.IsValidHostName(host))
        {
            error = $"'{registry}' is not a valid registry host";
            return false;
        }

        image = new ImageReference(registry, rest, digest is null ? tag ?? "latest" : tag, digest);
        return true;
    }
}
