namespace MitmCache.Caching;

// LiteDB documents: plain classes with setters, because LiteDB maps by property.

/// <summary>One cached blob or manifest, keyed by digest (content-addressed, shared across registries).</summary>
public sealed class BlobRecord
{
    public string Id { get; set; } = "";
    public long Size { get; set; }
    public string MediaType { get; set; } = "application/octet-stream";
    public DateTime FirstSeen { get; set; }
    public DateTime LastAccess { get; set; }
    public long Hits { get; set; }

    public BlobRecord Copy() => (BlobRecord)MemberwiseClone();
}

/// <summary>A digest was seen under a registry repository: the basis for authorizing cache hits.</summary>
public sealed class LinkRecord
{
    public string Id { get; set; } = "";
    public string Registry { get; set; } = "";
    public string Repository { get; set; } = "";
    public string Digest { get; set; } = "";
    public DateTime SeenAt { get; set; }

    public static string MakeId(string registry, string repository, string digest) => $"{registry}/{repository}@{digest}";
}

/// <summary>A tag resolved to a manifest digest for one normalized Accept set.</summary>
public sealed class TagRecord
{
    public string Id { get; set; } = "";
    public string TagKey { get; set; } = "";
    public string Registry { get; set; } = "";
    public string Repository { get; set; } = "";
    public string Tag { get; set; } = "";
    public string AcceptKey { get; set; } = "";
    public string Digest { get; set; } = "";
    public string MediaType { get; set; } = "";
    public DateTime FetchedAt { get; set; }

    public static string MakeTagKey(string registry, string repository, string tag) => $"{registry}/{repository}:{tag}";
}

/// <summary>Whether upstream served a repository's manifests without credentials.</summary>
public sealed class RepositoryRecord
{
    public string Id { get; set; } = "";
    public bool Public { get; set; }
    public DateTime UpdatedAt { get; set; }
}

/// <summary>The last <c>/v2/</c> answer of a registry: a Bearer/Basic challenge, or none (open registry).</summary>
public sealed class ChallengeRecord
{
    public string Id { get; set; } = "";
    public string? WwwAuthenticate { get; set; }
    public string? Realm { get; set; }

    /// <summary>Where the ping was redirected (registry.k8s.io sends every API call to its backing registry).</summary>
    public string? Redirect { get; set; }

    public DateTime SeenAt { get; set; }
}

/// <summary>
/// Proof that a credential may pull a repository, keyed by an HMAC of the credential under the
/// per-install key: the credential itself is never stored.
/// </summary>
public sealed class GrantRecord
{
    public string Id { get; set; } = "";
    public string CredentialKey { get; set; } = "";
    public string Registry { get; set; } = "";
    public string Repository { get; set; } = "";
    public DateTime Expires { get; set; }

    public static string MakeId(string credentialKey, string registry, string repository) => $"{credentialKey}|{registry}/{repository}";
}
