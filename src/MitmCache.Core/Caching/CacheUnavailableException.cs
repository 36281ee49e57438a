namespace MitmCache.Caching;

/// <summary>The data directory cannot hold the cache, and pass-through was not asked for.</summary>
internal sealed class CacheUnavailableException(string message, Exception inner) : Exception(message, inner);
