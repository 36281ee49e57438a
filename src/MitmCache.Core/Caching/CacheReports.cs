using System.Text.Json;
using System.Text.Json.Serialization;

namespace MitmCache.Caching;

// What the cache operations of CacheAdmin return: the JSON bodies of the /admin/cache/* endpoints,
// and what `mitmcache cache ...` renders, whether it asked a running proxy or opened the data directory.

/// <summary><c>cache stats</c>. <see cref="MaxBytes"/> and <see cref="Live"/> are known only to a running proxy.</summary>
/// <param name="Blobs">Layers and configs (everything that is not a manifest).</param>
/// <param name="StoredHits">Cache hits recorded in the index over the cache's lifetime.</param>
internal sealed record CacheStats(
    string DataDirectory,
    long TotalBytes,
    long? MaxBytes,
    int Blobs,
    int Manifests,
    int Tags,
    int Repositories,
    long StoredHits,
    LiveCounters? Live,
    IReadOnlyList<RepositoryUsage> TopRepositories);

/// <summary>Counters of the running proxy since it started (from <see cref="Diagnostics.CacheMetrics"/>).</summary>
/// <param name="FromCache">Blob and manifest requests the cache answered alone (hit, stale).</param>
/// <param name="FromUpstream">Blob and manifest requests that needed upstream (miss, coalesced, forwarded, bypass).</param>
/// <param name="HitRatio">FromCache / (FromCache + FromUpstream); null before the first such request.</param>
internal sealed record LiveCounters(
    long Requests,
    long FromCache,
    long FromUpstream,
    double? HitRatio,
    long BytesFromCache,
    long BytesFromUpstream,
    int FillsInFlight,
    long Evictions);

/// <summary>A repository's share of the cache: the cached blobs and manifests linked to it.</summary>
internal sealed record RepositoryUsage(string Registry, string Repository, long Bytes, int Blobs, DateTime LastUsed);

/// <summary>
/// A row of <c>cache ls</c>: a cached manifest or index under a repository, with its tags. Size, blob count
/// and last use cover the manifest and everything it references that is cached (children of an index too);
/// <see cref="Complete"/> is true when every referenced digest is cached, so the image pulls offline.
/// </summary>
internal sealed record CacheEntry(
    string Registry,
    string Repository,
    IReadOnlyList<string> Tags,
    string Digest,
    string MediaType,
    long Size,
    int Blobs,
    bool Complete,
    DateTime LastUsed);

/// <summary><c>cache prune</c>: what was removed (or, with DryRun, would be), oldest last use first.</summary>
internal sealed record PruneReport(bool DryRun, int Count, long Bytes, long RemainingBytes, IReadOnlyList<PrunedBlob> Blobs);

/// <param name="Reason"><c>age</c> (unused for longer than --older-than) or <c>size</c> (over --max-size).</param>
internal sealed record PrunedBlob(string Digest, long Size, string MediaType, DateTime LastAccess, string Reason, IReadOnlyList<string> Repositories);

/// <summary><c>cache verify</c>: every indexed blob re-hashed.</summary>
internal sealed record VerifyReport(int Checked, long Bytes, IReadOnlyList<CorruptBlob> Corrupt);

/// <param name="Problem">What is wrong: missing, wrong size, or content that does not hash to the digest.</param>
internal sealed record CorruptBlob(string Digest, long Size, string Problem, bool Deleted, IReadOnlyList<string> Repositories);

/// <summary>The body of an admin endpoint's error answer.</summary>
internal sealed record AdminError(string Error);

/// <summary>What <c>GET /admin/cache/info</c> answers: which cache this proxy is.</summary>
internal sealed record AdminInfo(string DataDirectory);

/// <summary>How many grants <c>POST /admin/auth/revoke</c> dropped.</summary>
internal sealed record RevokeReport(int Revoked);

/// <summary>Source-generated JSON for the reports (camelCase, as the web defaults).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
[JsonSerializable(typeof(CacheStats))]
[JsonSerializable(typeof(IReadOnlyList<CacheEntry>))]
[JsonSerializable(typeof(PruneReport))]
[JsonSerializable(typeof(VerifyReport))]
[JsonSerializable(typeof(AdminError))]
[JsonSerializable(typeof(AdminInfo))]
[JsonSerializable(typeof(RevokeReport))]
internal sealed partial class AdminJson : JsonSerializerContext;
