namespace MitmCache.Caching;

/// <summary>The data directory cannot hold the cache, and pass-through was not asked for.</summary>
internal sealed class CacheUnavailableException(string message, Exception inner) : Exception(message, inner)
{
    public static CacheUnavailableException For(string dataDirectory, Exception inner) =>
        new($"cannot open the cache in {dataDirectory}: {inner.Message}. Fix the data directory, or run with --on-cache-failure passthrough to proxy without caching.", inner);
}
