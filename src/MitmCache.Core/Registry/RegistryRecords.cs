namespace MitmCache.Registry;

// Registry authorization state kept in the index: LiteDB documents, plain classes with setters (LiteDB maps by
// property). Their collections are IndexSchema's; the stores are RepositoryVisibility, ChallengeRecords and GrantRecords.

/// <summary>Whether upstream served a repository's manifests without credentials.</summary>
public sealed class RepositoryRecord
{
    public string Id { get; set; } = "";
    public bool Public { get; set; }
    public DateTime UpdatedAt { get; set; }

    public static string MakeId(string registry, string repository) => $"{registry}/{repository}";
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
