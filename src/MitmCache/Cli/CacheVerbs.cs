using CommandLine;

namespace MitmCache.Cli;

/// <summary>Options every <c>cache</c> verb has: where the running proxy is, and the data directory to open when it is not.</summary>
internal abstract class CacheVerbOptions
{
    [Option("proxy", HelpText = "The running proxy, asked first over its admin endpoints. Default http://127.0.0.1:3128 (env MITMCACHE_PROXY).")]
    public string? Proxy { get; set; }

    [Option("data", HelpText = "The cache to act on: through the proxy when it serves this directory, else opened directly. Default: the proxy's, or ./mitmcache-data (env MITMCACHE_DATA).")]
    public string? Data { get; set; }

    [Option("json", HelpText = "Print the result as JSON (the admin endpoint's answer).")]
    public bool Json { get; set; }
}

[Verb("stats", HelpText = "Size, entry counts, hits and hit ratio, and the repositories using the most space.")]
internal sealed class CacheStatsVerb : CacheVerbOptions
{
    [Option("top", Default = 10, HelpText = "How many repositories to list.")]
    public int Top { get; set; }
}

[Verb("ls", HelpText = "List cached images: repository, tag, digest, size and last use.")]
internal sealed class CacheLsVerb : CacheVerbOptions
{
    [Option("registry", HelpText = "Only this registry (host[:port], e.g. registry-1.docker.io).")]
    public string? Registry { get; set; }

    [Option("repository", HelpText = "Only this repository (e.g. library/nginx; * matches anything, e.g. 'myorg/*').")]
    public string? Repository { get; set; }
}

[Verb("prune", HelpText = "Remove blobs unused for a while (--older-than), least recently used ones down to a size (--max-size), or both: give at least one.")]
internal sealed class CachePruneVerb : CacheVerbOptions
{
    [Option("older-than", HelpText = "Remove blobs not used for this long, e.g. 30d, 12h.")]
    public string? OlderThan { get; set; }

    [Option("max-size", HelpText = "Then remove least recently used blobs until the cache is at most this size, e.g. 20GiB.")]
    public string? MaxSize { get; set; }

    [Option("dry-run", HelpText = "Only list what would be removed.")]
    public bool DryRun { get; set; }
}

[Verb("verify", HelpText = "Re-hash every cached blob and report corrupt or missing ones (exit code 1 if any).")]
internal sealed class CacheVerifyVerb : CacheVerbOptions
{
    [Option("delete", HelpText = "Remove corrupt blobs from the cache (they are fetched again on the next pull).")]
    public bool Delete { get; set; }
}
