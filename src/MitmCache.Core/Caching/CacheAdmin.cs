using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// The operator's cache operations: stats, listing, prune and verify. One implementation for both ways
/// <c>mitmcache cache ...</c> reaches a cache: through the running proxy's <c>/admin/cache/*</c> endpoints
/// (LiteDB allows one process per file), or on the data directory of a stopped proxy. Deletion goes
/// through <see cref="BlobCache.Remove"/>, the same path as eviction.
/// </summary>
internal sealed class CacheAdmin
{
    private const int MaxManifestBytes = 4 << 20;

    private readonly BlobCache _cache;
    private readonly BlobRecords _blobs;
    private readonly LinkRecords _links;
    private readonly TagRecords _tags;
    private readonly BlobStore _store;
    private readonly CacheMetrics _metrics;
    private readonly long? _maxBytes;
    private readonly bool _live;
    private readonly ILogger<CacheAdmin> _logger;

    /// <param name="live">True inside the running proxy: its counters and size cap are reported.</param>
    public CacheAdmin(BlobCache cache, BlobRecords blobs, LinkRecords links, TagRecords tags, CacheMetrics metrics, Configuration.ProxySettings settings, bool live, ILogger<CacheAdmin> logger)
    {
        _cache = cache;
        _blobs = blobs;
        _links = links;
        _tags = tags;
        _store = new BlobStore(settings.Layout); // paths only: BlobCache.TryGet would drop entries whose file is missing
        _metrics = metrics;
        DataDirectory = settings.Layout.Root;
        _maxBytes = live ? settings.MaxCacheBytes : null;
        _live = live;
        _logger = logger;
    }

    /// <summary>The data directory this cache lives in (full path).</summary>
    public string DataDirectory { get; }

    public CacheStats Stats(int top = 10)
    {
        _blobs.FlushAccess(); // hits are kept in memory and written every 30 s
        var blobs = _blobs.AllBlobs().ToDictionary(b => b.Id, StringComparer.Ordinal);
        var manifests = blobs.Values.Count(b => MediaTypes.IsManifest(b.MediaType));
        var usage = _links.AllLinks()
            .Where(l => blobs.ContainsKey(l.Digest))
            .GroupBy(l => (l.Registry, l.Repository))
            .Select(g => new RepositoryUsage(g.Key.Registry, g.Key.Repository,
                g.Sum(l => blobs[l.Digest].Size), g.Count(), g.Max(l => blobs[l.Digest].LastAccess)))
            .ToList();
        var tags = _tags.AllTags().Where(t => blobs.ContainsKey(t.Digest)).Select(t => t.TagKey).Distinct(StringComparer.Ordinal).Count();
        return new CacheStats(
            DataDirectory,
            blobs.Values.Sum(b => b.Size),
            _maxBytes,
            blobs.Count - manifests,
            manifests,
            tags,
            usage.Count,
            blobs.Values.Sum(b => b.Hits),
            _live ? LiveCounters() : null,
            [.. usage.OrderByDescending(u => u.Bytes).ThenBy(u => u.Registry, StringComparer.Ordinal).ThenBy(u => u.Repository, StringComparer.Ordinal).Take(top)]);
    }

    /// <summary>Manifests per repository, with tags. Filters: registry (exact) and repository (exact, or a <c>*</c> pattern).</summary>
    public IReadOnlyList<CacheEntry> List(string? registry, string? repository)
    {
        _blobs.FlushAccess();
        var blobs = _blobs.AllBlobs().ToDictionary(b => b.Id, StringComparer.Ordinal);
        var tags = _tags.AllTags().ToLookup(t => (t.Registry, t.Repository, t.Digest));
        var repositoryPattern = string.IsNullOrEmpty(repository) ? null : Pattern(repository);
        var rows = new List<CacheEntry>();
        foreach (var link in _links.AllLinks())
        {
            if ((!string.IsNullOrEmpty(registry) && !string.Equals(link.Registry, registry, StringComparison.OrdinalIgnoreCase))
                || (repositoryPattern is not null && !repositoryPattern.IsMatch(link.Repository))
                || !blobs.TryGetValue(link.Digest, out var record)
                || !MediaTypes.IsManifest(record.MediaType))
            {
                continue;
            }

            var (size, count, complete, lastUsed) = Measure(record, blobs);
            var names = tags[(link.Registry, link.Repository, link.Digest)].Select(t => t.Tag).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            rows.Add(new CacheEntry(link.Registry, link.Repository, names, link.Digest, record.MediaType, size, count, complete, lastUsed));
        }

        return
        [
            .. rows.OrderBy(r => r.Registry, StringComparer.Ordinal)
                .ThenBy(r => r.Repository, StringComparer.Ordinal)
                .ThenBy(r => r.Tags.Count == 0)
                .ThenBy(r => r.Tags.FirstOrDefault(), StringComparer.Ordinal)
                .ThenBy(r => r.Digest, StringComparer.Ordinal),
        ];
    }

    /// <summary>
    /// Removes blobs unused for longer than <paramref name="olderThan"/>, then least recently used ones
    /// until the cache is at most <paramref name="maxBytes"/>. With <paramref name="dryRun"/>, only reports.
    /// </summary>
    public PruneReport Prune(TimeSpan? olderThan, long? maxBytes, bool dryRun)
    {
        _blobs.FlushAccess();
        var cutoff = olderThan is { } age ? _cache.Now - age : (DateTime?)null;
        var remaining = _blobs.TotalBlobBytes();
        var pruned = new List<PrunedBlob>();
        foreach (var record in _blobs.BlobsByLastAccess())
        {
            var reason = record.LastAccess < cutoff ? "age" : remaining > maxBytes ? "size" : null;
            if (reason is null)
            {
                break; // least recently used first: nothing later is older, and the size is reached
            }

            if (!Digest.TryParse(record.Id, out var digest))
            {
                continue;
            }

            var repositories = RepositoriesOf(digest); // before the removal takes the links with it
            if (!dryRun && !_cache.Remove(digest))
            {
                continue;
            }

            if (!dryRun)
            {
                _metrics.Evicted(record.Size, CacheMetrics.EvictedByPrune);
            }

            remaining -= record.Size;
            pruned.Add(new PrunedBlob(record.Id, record.Size, record.MediaType, record.LastAccess, reason, repositories));
        }

        var bytes = pruned.Sum(p => p.Size);
        if (!dryRun)
        {
            _logger.Pruned(pruned.Count, bytes, remaining);
        }

        return new PruneReport(dryRun, pruned.Count, bytes, remaining, pruned);
    }

    /// <summary>Re-hashes every indexed blob. Corrupt or missing ones are reported, and removed with <paramref name="delete"/>.</summary>
    public VerifyReport Verify(bool delete, CancellationToken cancellationToken)
    {
        var checkedCount = 0;
        long bytes = 0;
        var corrupt = new List<CorruptBlob>();
        foreach (var record in _blobs.AllBlobs().ToList())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!Digest.TryParse(record.Id, out var digest))
            {
                continue;
            }

            var path = _store.PathOf(digest);
            string? problem = null;
            if (!File.Exists(path))
            {
                problem = "file missing";
            }
            else if (!BlobRepair.VerifyFile(digest, path, out var size, out _))
            {
                problem = "content does not match the digest";
            }
            else if (size != record.Size)
            {
                problem = $"size {size} bytes, indexed as {record.Size}";
            }

            if (problem is not null && _blobs.FindBlob(digest) is null)
            {
                continue; // evicted or pruned while we read it
            }

            checkedCount++;
            bytes += record.Size;
            if (problem is null)
            {
                continue;
            }

            _logger.CorruptBlobFound(record.Id, problem);
            var repositories = RepositoriesOf(digest);
            var deleted = delete && _cache.Remove(digest);
            if (deleted)
            {
                _metrics.Evicted(record.Size, CacheMetrics.EvictedAsCorrupt);
            }

            corrupt.Add(new CorruptBlob(record.Id, record.Size, problem, deleted, repositories));
        }

        _logger.Verified(checkedCount, bytes, corrupt.Count);
        return new VerifyReport(checkedCount, bytes, corrupt);
    }

    private LiveCounters LiveCounters()
    {
        long fromCache = _metrics.AnsweredFromCache, fromUpstream = _metrics.AnsweredFromUpstream;
        return new LiveCounters(
            _metrics.Requests,
            fromCache,
            fromUpstream,
            fromCache + fromUpstream == 0 ? null : (double)fromCache / (fromCache + fromUpstream),
            _metrics.ServedFromCache,
            _metrics.ServedFromUpstream,
            _cache.InFlightCount,
            _metrics.Evictions);
    }

    /// <summary>Size, cached blob count, completeness and last use of a manifest and everything it references.</summary>
    private (long Size, int Blobs, bool Complete, DateTime LastUsed) Measure(BlobRecord root, Dictionary<string, BlobRecord> blobs)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { root.Id };
        var pending = new Stack<BlobRecord>([root]);
        long size = 0;
        var count = 0;
        var complete = true;
        var lastUsed = DateTime.MinValue;
        while (pending.TryPop(out var record))
        {
            size += record.Size;
            count++;
            lastUsed = record.LastAccess > lastUsed ? record.LastAccess : lastUsed;
            if (!MediaTypes.IsManifest(record.MediaType))
            {
                continue;
            }

            var references = ReferencesOf(record);
            complete &= references is not null;
            foreach (var reference in references ?? [])
            {
                if (!seen.Add(reference))
                {
                    continue;
                }

                if (blobs.TryGetValue(reference, out var child))
                {
                    pending.Push(child);
                }
                else
                {
                    complete = false;
                }
            }
        }

        return (size, count, complete, lastUsed);
    }

    /// <summary>The digests a stored manifest refers to (config, layers, index children); null if unreadable.</summary>
    private IReadOnlyList<string>? ReferencesOf(BlobRecord record)
    {
        if (!Digest.TryParse(record.Id, out var digest) || record.Size > MaxManifestBytes)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(_store.PathOf(digest)));
            var root = document.RootElement;
            var references = new List<string>();
            if (root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object)
            {
                AddDigest(config, references);
            }

            foreach (var list in new[] { "layers", "manifests" })
            {
                if (root.TryGetProperty(list, out var items) && items.ValueKind == JsonValueKind.Array)
                {
                    foreach (var item in items.EnumerateArray())
                    {
                        AddDigest(item, references);
                    }
                }
            }

            return references;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    private static void AddDigest(JsonElement descriptor, List<string> references)
    {
        if (descriptor.ValueKind == JsonValueKind.Object
            && descriptor.TryGetProperty("digest", out var value)
            && value.ValueKind == JsonValueKind.String
            && Digest.TryParse(value.GetString(), out var digest))
        {
            references.Add(digest.ToString());
        }
    }

    private List<string> RepositoriesOf(Digest digest) =>
        [.. _links.LinksOf(digest).Select(l => $"{l.Registry}/{l.Repository}").Order(StringComparer.Ordinal)];

    /// <summary>An exact name, or a pattern where <c>*</c> matches any run of characters.</summary>
    private static Regex Pattern(string pattern) =>
        new("^" + string.Join(".*", pattern.Split('*').Select(Regex.Escape)) + "\\z", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
}
