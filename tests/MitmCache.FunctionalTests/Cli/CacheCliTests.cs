using System.Text.Json;
using MitmCache.Caching;
using MitmCache.FunctionalTests.Infrastructure;
using MitmCache.Registry;
using MitmCache.Tests.Common;

namespace MitmCache.FunctionalTests.Cli;

/// <summary>
/// <c>mitmcache cache stats|ls|prune|verify</c>, the real executable: against a running proxy (admin
/// endpoints) and against the data directory of a stopped one.
/// </summary>
public sealed class CacheCliTests
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task CacheVerbs_LiveProxy_AnswerThroughAdminEndpoints()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var app = await world.PushImageAsync("library/app", "v1", (200_000, 81), (50_000, 82));
        var other = await world.PushImageAsync("library/other", "v2", (30_000, 83));
        await PullAsync(world, "library/app:v1", "app-cold");
        await PullAsync(world, "library/other:v2", "other-cold");
        await PullAsync(world, "library/app:v1", "app-warm");
        var proxy = world.Proxy.Url;
        var data = world.Proxy.Settings.DataDirectory; // the proxy's own, whose index it holds locked

        var stats = await RunJsonAsync<CacheStats>("cache", "stats", "--json", "--proxy", proxy, "--data", data);
        var allBlobs = app.Blobs.Concat(other.Blobs).ToList();
        Assert.Equal(allBlobs.Sum(b => (long)b.Bytes.Length) + app.Manifest.Length + other.Manifest.Length, stats.TotalBytes);
        Assert.Equal(allBlobs.Count, stats.Blobs);
        Assert.Equal(2, stats.Manifests);
        Assert.Equal(2, stats.Tags);
        Assert.Equal(2, stats.Repositories);
        Assert.True(stats.StoredHits >= 3, $"the warm pull's hits are flushed to the index first, saw {stats.StoredHits}");
        Assert.Equal(world.Proxy.Settings.MaxCacheBytes, stats.MaxBytes);
        Assert.NotNull(stats.Live);
        Assert.InRange(stats.Live.HitRatio!.Value, 0.1, 0.9);
        Assert.Equal("library/app", stats.TopRepositories[0].Repository);
        Assert.Equal(world.Authority, stats.TopRepositories[0].Registry);

        var text = await RunAsync("cache", "stats", "--proxy", proxy);
        Assert.Contains($"from the proxy at {proxy}", text.StdOut, StringComparison.Ordinal);
        Assert.Contains("Hit ratio:", text.StdOut, StringComparison.Ordinal);
        Assert.Contains($"{world.Authority}/library/app", text.StdOut, StringComparison.Ordinal);

        var table = await RunAsync("cache", "ls", "--proxy", proxy);
        var appRow = Assert.Single(table.StdOut.Split('\n'), l => l.StartsWith($"{world.Authority}/library/app ", StringComparison.Ordinal));
        Assert.Matches($@"^\S+/library/app\s+v1\s+{Digests.Hex(app.ManifestDigest)[..12]}\s+\d+\.\d KiB\s+4\s+complete\s+(just now|\dm ago)$", appRow);
        var filtered = await RunJsonAsync<List<CacheEntry>>("cache", "ls", "--json", "--proxy", proxy, "--repository", "library/o*", "--registry", world.Authority);
        var entry = Assert.Single(filtered);
        Assert.Equal(new[] { "v2" }, entry.Tags);
        Assert.Equal(other.ManifestDigest, entry.Digest);
        Assert.Equal(other.Blobs.Sum(b => (long)b.Bytes.Length) + other.Manifest.Length, entry.Size);

        // prune --dry-run lists everything older than zero seconds, and removes nothing.
        var dryRun = await RunJsonAsync<PruneReport>("cache", "prune", "--json", "--proxy", proxy, "--older-than", "0s", "--dry-run");
        Assert.True(dryRun.DryRun);
        Assert.Equal(allBlobs.Count + 2, dryRun.Count);
        Assert.Equal(stats.TotalBytes, (await RunJsonAsync<CacheStats>("cache", "stats", "--json", "--proxy", proxy)).TotalBytes);

        // prune --max-size one byte under the total removes exactly the least recently used entry, as eviction would.
        var cache = world.Proxy.Get<BlobCache>();
        var (blobs, links, tags) = (world.Proxy.Get<BlobRecords>(), world.Proxy.Get<LinkRecords>(), world.Proxy.Get<TagRecords>());
        blobs.FlushAccess();
        var leastRecent = blobs.BlobsByLastAccess().First();
        var linkedIn = links.LinksOf(DigestOf(leastRecent.Id)).Select(l => $"{l.Registry}/{l.Repository}").Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(linkedIn);
        var pruned = await RunJsonAsync<PruneReport>("cache", "prune", "--json", "--proxy", proxy, "--max-size", (stats.TotalBytes - 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
        var gone = Assert.Single(pruned.Blobs);
        Assert.Equal(leastRecent.Id, gone.Digest);
        Assert.Equal("size", gone.Reason);
        Assert.Equal(linkedIn, gone.Repositories);
        Assert.Null(blobs.FindBlob(DigestOf(leastRecent.Id)));
        Assert.DoesNotContain(tags.AllTags(), t => t.Digest == leastRecent.Id);
        Assert.Empty(links.LinksOf(DigestOf(leastRecent.Id))); // its links went with it: fetched again, it earns them again
        Assert.Equal(stats.TotalBytes - leastRecent.Size, cache.TotalBytes);

        // verify finds a layer whose bytes changed on disk; --delete drops it; the next pull fetches it again.
        var (layer, _) = other.Layers[0];
        Corrupt(world.Proxy.Settings.DataDirectory, layer);
        var found = await MitmCacheCli.RunAsync("cache", "verify", "--proxy", proxy);
        Assert.Equal(1, found.ExitCode);
        Assert.Contains(layer, found.StdOut, StringComparison.Ordinal);
        Assert.Contains("content does not match the digest", found.StdOut, StringComparison.Ordinal);
        Assert.Contains("kept (use --delete)", found.StdOut, StringComparison.Ordinal);
        Assert.NotNull(blobs.FindBlob(DigestOf(layer)));

        var deleted = await MitmCacheCli.RunAsync("cache", "verify", "--delete", "--json", "--proxy", proxy);
        Assert.Equal(1, deleted.ExitCode);
        var report = JsonSerializer.Deserialize<VerifyReport>(deleted.StdOut, s_json)!;
        var corrupt = Assert.Single(report.Corrupt);
        Assert.Equal(layer, corrupt.Digest);
        Assert.True(corrupt.Deleted);
        Assert.Equal(new[] { $"{world.Authority}/library/other" }, corrupt.Repositories);
        Assert.Null(blobs.FindBlob(DigestOf(layer)));
        Assert.Equal(0, (await MitmCacheCli.RunAsync("cache", "verify", "--proxy", proxy)).ExitCode);
        await PullAsync(world, "library/other:v2", "other-again");
        Assert.NotNull(blobs.FindBlob(DigestOf(layer)));

        using var http = new HttpClient();
        var metrics = PrometheusText.Parse(await http.GetStringAsync($"{proxy}/metrics"));
        Assert.Equal(1, metrics.Value("mitmcache_evictions_total", ("reason", "prune")));
        Assert.Equal(1, metrics.Value("mitmcache_evictions_total", ("reason", "corrupt")));
        Assert.Equal(0, metrics.Value("mitmcache_evictions_total", ("reason", "size")));
    }

    [Fact]
    public async Task CacheVerbs_StoppedProxy_OpenTheDataDirectory()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/offline", "v1", (120_000, 91), (40_000, 92));
        await PullAsync(world, "library/offline:v1", "cold");
        await PullAsync(world, "library/offline:v1", "warm");
        var data = world.Proxy.Settings.DataDirectory;
        var dead = $"http://127.0.0.1:{FreePort.Get()}";
        await world.Proxy.StopAsync();

        var statsRun = await RunAsync("cache", "stats", "--json", "--proxy", dead, "--data", data);
        Assert.Contains($"no proxy answers at {dead}; opening {data}", statsRun.StdErr, StringComparison.Ordinal);
        var stats = JsonSerializer.Deserialize<CacheStats>(statsRun.StdOut, s_json)!;
        Assert.Null(stats.Live);
        Assert.Null(stats.MaxBytes);
        Assert.Equal(3, stats.Blobs);
        Assert.Equal(1, stats.Manifests);
        Assert.True(stats.StoredHits >= 3, "hits were written to the index at shutdown");
        Assert.Equal(image.Blobs.Sum(b => (long)b.Bytes.Length) + image.Manifest.Length, stats.TotalBytes);

        var env = new Dictionary<string, string?> { ["MITMCACHE_PROXY"] = dead, ["MITMCACHE_DATA"] = data };
        var table = await MitmCacheCli.RunAsync(["cache", "ls"], env);
        Assert.True(table.Succeeded, table.ToString());
        Assert.Contains($"{world.Authority}/library/offline", table.StdOut, StringComparison.Ordinal);
        Assert.Contains(Digests.Hex(image.ManifestDigest)[..12], table.StdOut, StringComparison.Ordinal);

        var (layer, _) = image.Layers[1];
        Corrupt(data, layer);
        var verify = await MitmCacheCli.RunAsync(["cache", "verify", "--delete"], env);
        Assert.Equal(1, verify.ExitCode);
        Assert.Contains(layer, verify.StdOut, StringComparison.Ordinal);
        Assert.Contains("deleted", verify.StdOut, StringComparison.Ordinal);

        var prune = await MitmCacheCli.RunAsync(["cache", "prune", "--older-than", "0s"], env);
        Assert.True(prune.Succeeded, prune.ToString());
        Assert.Contains("Removed 3 blobs", prune.StdOut, StringComparison.Ordinal);
        Assert.Equal(0, JsonSerializer.Deserialize<CacheStats>((await RunAsync("cache", "stats", "--json", "--proxy", dead, "--data", data)).StdOut, s_json)!.TotalBytes);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(data, "blobs"), "*", SearchOption.AllDirectories));

        // The proxy starts on what the CLI left, and fills again.
        await world.Proxy.StartAgainAsync();
        Assert.Equal(0, world.Proxy.Get<BlobCache>().TotalBytes);
        await PullAsync(world, "library/offline:v1", "again");
        Assert.Equal(4, world.Proxy.Get<BlobRecords>().CountBlobs().Total);

        // While it runs, nothing else may open its index.
        var locked = await MitmCacheCli.RunAsync(["cache", "stats"], env);
        Assert.Equal(1, locked.ExitCode);
        Assert.Contains("in use by another process", locked.StdErr, StringComparison.Ordinal);
        Assert.Contains("--proxy", locked.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminEndpoints_RefuseForeignHostsBrowsersAndBadRequests()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        using var http = new HttpClient();
        var stats = $"{world.Proxy.Url}/admin/cache/stats";

        using var rebound = new HttpRequestMessage(HttpMethod.Get, stats);
        rebound.Headers.Host = "attacker.example";
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await http.SendAsync(rebound)).StatusCode);

        using var browser = new HttpRequestMessage(HttpMethod.Get, stats);
        browser.Headers.Add("Origin", "https://attacker.example");
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await http.SendAsync(browser)).StatusCode);

        // A cross-site form can POST, but cannot add the admin header.
        using var form = await http.PostAsync($"{world.Proxy.Url}/admin/cache/prune?olderThan=0s", new StringContent(""));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, form.StatusCode);
        Assert.Contains("X-MitmCache-Admin", await form.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var badValue = new HttpRequestMessage(HttpMethod.Post, $"{world.Proxy.Url}/admin/cache/prune?olderThan=soon");
        badValue.Headers.Add("X-MitmCache-Admin", "1");
        using var badAnswer = await http.SendAsync(badValue);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, badAnswer.StatusCode);
        Assert.Contains("olderThan", await badAnswer.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        Assert.Equal(System.Net.HttpStatusCode.MethodNotAllowed, (await http.GetAsync($"{world.Proxy.Url}/admin/cache/prune")).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync($"http://localhost:{world.Proxy.Port}/admin/cache/stats")).StatusCode);

        var usage = await MitmCacheCli.RunAsync("cache", "prune", "--proxy", world.Proxy.Url);
        Assert.Equal(2, usage.ExitCode);
        Assert.Contains("--older-than, --max-size or both", usage.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CacheVerbs_DataDirectoryOfAnotherProxy_ActOnThatDirectoryAndSaySo()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        var image = await world.PushImageAsync("library/elsewhere", "v1", (60_000, 95), (20_000, 96));
        await PullAsync(world, "library/elsewhere:v1", "cold");
        var data = world.Proxy.Settings.DataDirectory;
        await world.Proxy.StopAsync();
        using var otherDir = TempDir.Create("mitmcache-other");
        using var other = await ProxyProcess.StartAsync(otherDir.Combine("data"), FreePort.Get()); // an empty cache elsewhere

        var dryRun = await MitmCacheCli.RunAsync(["cache", "prune", "--dry-run", "--older-than", "0s", "--data", data, "--proxy", other.Url], null);
        var list = await MitmCacheCli.RunAsync(["cache", "ls", "--data", data], new Dictionary<string, string?> { ["MITMCACHE_PROXY"] = other.Url });

        Assert.True(dryRun.Succeeded, dryRun.ToString());
        Assert.Contains($"Would remove {image.Blobs.Count() + 1} blobs", dryRun.StdOut, StringComparison.Ordinal);
        Assert.Contains(data, dryRun.StdErr, StringComparison.Ordinal);
        Assert.True(list.Succeeded, list.ToString());
        Assert.Contains($"{world.Authority}/library/elsewhere", list.StdOut, StringComparison.Ordinal);
        Assert.Contains(data, list.StdErr, StringComparison.Ordinal);
        Assert.Equal(image.Blobs.Count() + 1, Directory.EnumerateFiles(Path.Combine(data, "blobs"), "*", SearchOption.AllDirectories).Count());
    }

    [Fact]
    public async Task AuthRevoke_GuardedLikeTheCacheEndpoints()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false);
        using var http = new HttpClient();
        var revoke = $"{world.Proxy.Url}/admin/auth/revoke?registry={world.Authority}";

        // A web page on the node: a DNS name rebound to 127.0.0.1, a fetch() with an Origin, a cross-site form.
        using var rebound = new HttpRequestMessage(HttpMethod.Post, revoke);
        rebound.Headers.Host = "attacker.example";
        rebound.Headers.Add("X-MitmCache-Admin", "1");
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await http.SendAsync(rebound)).StatusCode);
        using var browser = new HttpRequestMessage(HttpMethod.Post, revoke);
        browser.Headers.Add("Origin", "https://attacker.example");
        browser.Headers.Add("X-MitmCache-Admin", "1");
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await http.SendAsync(browser)).StatusCode);
        using var form = await http.PostAsync(revoke, new StringContent(""));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, form.StatusCode);
        Assert.Contains("X-MitmCache-Admin", await form.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        var cli = await MitmCacheCli.RunAsync("auth", "revoke", "--registry", world.Authority, "--proxy", world.Proxy.Url);
        Assert.True(cli.Succeeded, cli.ToString());
        Assert.Contains("\"revoked\":0", cli.StdOut, StringComparison.Ordinal);
    }

    private static async Task PullAsync(RegistryWorld world, string image, string directory)
    {
        var pull = await Skopeo.CopyToOciAsync($"{world.Authority}/{image}", world.Dir.Combine(directory), world.Proxy.Url,
            world.Proxy.CaBundlePath, null, false, CancellationToken.None);
        Assert.True(pull.Succeeded, pull.StdErr);
    }

    /// <summary>Flips a byte in the middle of a stored blob: same size, different content.</summary>
    private static Digest DigestOf(string digest) =>
        Digest.TryParse(digest, out var parsed) ? parsed : throw new ArgumentException($"not a digest: {digest}", nameof(digest));

    private static void Corrupt(string dataDirectory, string digest)
    {
        Assert.True(Digest.TryParse(digest, out var parsed));
        var path = Path.Combine(dataDirectory, "blobs", parsed.RelativePath);
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(path, bytes);
    }

    private static async Task<ProcessResult> RunAsync(params string[] args)
    {
        var result = await MitmCacheCli.RunAsync(args);
        Assert.True(result.Succeeded, result.ToString());
        return result;
    }

    private static async Task<T> RunJsonAsync<T>(params string[] args) =>
        JsonSerializer.Deserialize<T>((await RunAsync(args)).StdOut, s_json)!;
}
