using System.Text;
using System.Text.Json;
using MitmCache.Caching;
using MitmCache.Configuration;

namespace MitmCache.Cli;

/// <summary>
/// <c>mitmcache cache stats|ls|prune|verify</c>: ask the running proxy when one answers at <c>--proxy</c>,
/// else open <c>--data</c> directly. Exit codes: 0 ok, 1 failure (or corruption found by verify), 2 usage.
/// </summary>
internal static class CacheCommands
{
    public const string DefaultProxy = "http://127.0.0.1:3128";

    public static Task<int> StatsAsync(CacheStatsVerb verb) => RunAsync(verb, async (cache, cancellationToken) =>
    {
        var stats = await cache.StatsAsync(Math.Max(0, verb.Top), cancellationToken);
        Console.Out.Write(verb.Json ? Json(stats, AdminJson.Default.CacheStats) : RenderStats(stats, cache.Source));
        return 0;
    });

    public static Task<int> ListAsync(CacheLsVerb verb) => RunAsync(verb, async (cache, cancellationToken) =>
    {
        var entries = await cache.ListAsync(verb.Registry, verb.Repository, cancellationToken);
        if (verb.Json)
        {
            Console.Out.Write(Json(entries, AdminJson.Default.IReadOnlyListCacheEntry));
            return 0;
        }

        var now = DateTime.UtcNow;
        Console.Out.Write(TextFormat.Table(
            ["REPOSITORY", "TAG", "DIGEST", "SIZE", "BLOBS", "CACHED", "LAST USED"],
            entries.Select(e => (IReadOnlyList<string>)
            [
                $"{e.Registry}/{e.Repository}",
                e.Tags.Count == 0 ? "-" : string.Join(',', e.Tags),
                TextFormat.ShortDigest(e.Digest),
                TextFormat.Size(e.Size),
                TextFormat.Count(e.Blobs),
                e.Complete ? "complete" : "partial",
                TextFormat.Ago(e.LastUsed, now),
            ])));
        return 0;
    });

    public static Task<int> PruneAsync(CachePruneVerb verb)
    {
        var errors = new List<string>();
        TimeSpan? olderThan = null;
        long? maxBytes = null;
        if (verb.OlderThan is not null)
        {
            if (ValueParsers.TryParseDuration(verb.OlderThan, out var age))
            {
                olderThan = age;
            }
            else
            {
                errors.Add($"--older-than: '{verb.OlderThan}' is not a duration (30d, 12h, 90m)");
            }
        }

        if (verb.MaxSize is not null)
        {
            if (ValueParsers.TryParseSize(verb.MaxSize, out var size))
            {
                maxBytes = size;
            }
            else
            {
                errors.Add($"--max-size: '{verb.MaxSize}' is not a size (20GiB, 500MB)");
            }
        }

        if (verb.OlderThan is null && verb.MaxSize is null)
        {
            errors.Add("give --older-than, --max-size or both");
        }

        if (errors.Count > 0)
        {
            errors.ForEach(e => Console.Error.WriteLine($"mitmcache: {e}"));
            return Task.FromResult(2);
        }

        return RunAsync(verb, async (cache, cancellationToken) =>
        {
            var report = await cache.PruneAsync(olderThan, maxBytes, verb.DryRun, cancellationToken);
            Console.Out.Write(verb.Json ? Json(report, AdminJson.Default.PruneReport) : RenderPrune(report));
            return 0;
        });
    }

    public static Task<int> VerifyAsync(CacheVerifyVerb verb) => RunAsync(verb, async (cache, cancellationToken) =>
    {
        var report = await cache.VerifyAsync(verb.Delete, cancellationToken);
        Console.Out.Write(verb.Json ? Json(report, AdminJson.Default.VerifyReport) : RenderVerify(report));
        return report.Corrupt.Count == 0 ? 0 : 1;
    });

    /// <summary><c>mitmcache auth revoke</c>: through the running proxy's admin endpoint, or in the stopped proxy's index.</summary>
    public static Task<int> RevokeAsync(AuthRevokeVerb verb) => RunAsync(verb.Proxy, verb.Data, async (cache, cancellationToken) =>
    {
        var revoked = await cache.RevokeAsync(verb.Registry, verb.Repository, cancellationToken);
        Console.Out.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"revoked in {cache.Source}: {{\"revoked\":{revoked}}}"));
        return 0;
    });

    private static Task<int> RunAsync(CacheVerbOptions options, Func<ICacheOperations, CancellationToken, Task<int>> operation) =>
        RunAsync(options.Proxy, options.Data, operation);

    private static async Task<int> RunAsync(string? proxyFlag, string? dataFlag, Func<ICacheOperations, CancellationToken, Task<int>> operation)
    {
        var proxyText = proxyFlag ?? Environment.GetEnvironmentVariable("MITMCACHE_PROXY") ?? DefaultProxy;
        if (!Uri.TryCreate(proxyText, UriKind.Absolute, out var proxy) || proxy.Scheme != Uri.UriSchemeHttp)
        {
            Console.Error.WriteLine($"mitmcache: --proxy: '{proxyText}' is not an http:// URL");
            return 2;
        }

        using var cancel = CommandLineApp.CancelOnCtrlC();
        try
        {
            using var cache = await OpenAsync(proxy, CommandLineApp.NamedDataDirectory(dataFlag), cancel.Token);
            return await operation(cache, cancel.Token);
        }
        catch (CliException ex)
        {
            Console.Error.WriteLine($"mitmcache: {ex.Message}");
            return 1;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            Console.Error.WriteLine("mitmcache: interrupted");
            return 130;
        }
    }

    /// <summary>
    /// The running proxy when one answers at <paramref name="proxy"/> and serves the data directory named (or none
    /// is named); otherwise the directory, opened here. A proxy serving another directory is never acted on in its
    /// place. Says on stderr which cache it is.
    /// </summary>
    private static async Task<ICacheOperations> OpenAsync(Uri proxy, string? named, CancellationToken cancellationToken)
    {
        var at = proxy.GetLeftPart(UriPartial.Authority);
        if (await AdminApiClient.ConnectAsync(proxy, cancellationToken) is { } client)
        {
            if (named is null || SameDirectory(client.DataDirectory, named))
            {
                Console.Error.WriteLine($"mitmcache: the cache in {client.DataDirectory}, through the proxy at {at}");
                return client;
            }

            Console.Error.WriteLine($"mitmcache: the proxy at {at} serves {client.DataDirectory}, not {named}; opening {named}");
            client.Dispose();
            return DataDirectoryCache.Open(named);
        }

        var data = CommandLineApp.DataDirectory(named).Root;
        Console.Error.WriteLine($"mitmcache: no proxy answers at {at}; opening {data}");
        return DataDirectoryCache.Open(data);
    }

    private static bool SameDirectory(string a, string b) =>
        Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(b));

    private static string Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
        JsonSerializer.Serialize(value, type) + "\n";

    private static string RenderStats(CacheStats stats, string source)
    {
        var text = new StringBuilder();
        text.Append("Cache:        ").Append(stats.DataDirectory).Append(" (from ").Append(source).Append(")\n");
        text.Append("Size:         ").Append(TextFormat.Size(stats.TotalBytes));
        if (stats.MaxBytes is { } max && max > 0)
        {
            text.Append(" of ").Append(TextFormat.Size(max)).Append(" (").Append(TextFormat.Percent((double)stats.TotalBytes / max)).Append(')');
        }

        text.Append('\n');
        text.Append("Entries:      ").Append(TextFormat.Count(stats.Blobs)).Append(" blobs, ").Append(TextFormat.Count(stats.Manifests)).Append(" manifests, ")
            .Append(TextFormat.Count(stats.Tags)).Append(" tags in ").Append(TextFormat.Count(stats.Repositories)).Append(" repositories\n");
        text.Append("Hits:         ").Append(TextFormat.Count(stats.StoredHits)).Append(" (recorded in the index)\n");
        if (stats.Live is { } live)
        {
            text.Append("Hit ratio:    ").Append(live.HitRatio is { } ratio ? TextFormat.Percent(ratio) : "-")
                .Append(" of ").Append(TextFormat.Count(live.FromCache + live.FromUpstream)).Append(" blob and manifest requests since the proxy started\n");
            text.Append("Served:       ").Append(TextFormat.Size(live.BytesFromCache)).Append(" from cache, ").Append(TextFormat.Size(live.BytesFromUpstream))
                .Append(" from upstream; ").Append(TextFormat.Count(live.FillsInFlight)).Append(" fills in flight, ")
                .Append(TextFormat.Count(live.Evictions)).Append(" blobs evicted\n");
        }
        else
        {
            text.Append("Hit ratio:    - (known only to a running proxy)\n");
        }

        if (stats.TopRepositories.Count > 0)
        {
            var now = DateTime.UtcNow;
            text.Append("Top repositories by size:\n");
            text.Append(TextFormat.Table(["REPOSITORY", "SIZE", "BLOBS", "LAST USED"],
                stats.TopRepositories.Select(r => (IReadOnlyList<string>)
                    [$"{r.Registry}/{r.Repository}", TextFormat.Size(r.Bytes), TextFormat.Count(r.Blobs), TextFormat.Ago(r.LastUsed, now)]),
                indent: "  "));
        }

        return text.ToString();
    }

    private static string RenderPrune(PruneReport report)
    {
        var now = DateTime.UtcNow;
        var text = new StringBuilder();
        if (report.Count > 0)
        {
            text.Append(TextFormat.Table(["DIGEST", "SIZE", "LAST USED", "REASON", "REPOSITORIES"],
                report.Blobs.Select(b => (IReadOnlyList<string>)
                [
                    TextFormat.ShortDigest(b.Digest), TextFormat.Size(b.Size), TextFormat.Ago(b.LastAccess, now), b.Reason,
                    b.Repositories.Count == 0 ? "-" : string.Join(", ", b.Repositories),
                ])));
        }

        text.Append(report.DryRun ? "Would remove " : "Removed ").Append(TextFormat.Count(report.Count)).Append(" blobs (")
            .Append(TextFormat.Size(report.Bytes)).Append(report.DryRun ? "); the cache would be " : "); the cache is now ")
            .Append(TextFormat.Size(report.RemainingBytes)).Append(report.DryRun ? " (dry run: nothing was removed)\n" : "\n");
        return text.ToString();
    }

    private static string RenderVerify(VerifyReport report)
    {
        var text = new StringBuilder();
        text.Append("Verified ").Append(TextFormat.Count(report.Checked)).Append(" blobs (").Append(TextFormat.Size(report.Bytes)).Append("): ");
        if (report.Corrupt.Count == 0)
        {
            return text.Append("all match their digests\n").ToString();
        }

        text.Append(TextFormat.Count(report.Corrupt.Count)).Append(" corrupt\n");
        text.Append(TextFormat.Table(["DIGEST", "SIZE", "PROBLEM", "ACTION", "REPOSITORIES"],
            report.Corrupt.Select(c => (IReadOnlyList<string>)
            [
                c.Digest, TextFormat.Size(c.Size), c.Problem, c.Deleted ? "deleted" : "kept (use --delete)",
                c.Repositories.Count == 0 ? "-" : string.Join(", ", c.Repositories),
            ])));
        return text.ToString();
    }
}
