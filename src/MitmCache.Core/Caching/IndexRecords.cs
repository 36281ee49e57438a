using MitmCache.Registry;

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

    public static string MakeId(string registry, string repository, string digest) => PrefixOf(RepositoryRecord.MakeId(registry, repository)) + digest;

    /// <summary>What the ids of a repository's links start with.</summary>
    public static string PrefixOf(string repositoryId) => repositoryId + "@";
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
