namespace MitmCache.Caching;

/// <summary>
/// The cache index is open in another process: LiteDB allows one process per file. Not an
/// <see cref="IOException"/> on purpose: the data directory is fine, so neither the pass-through
/// fallback nor the corrupt-index rebuild may take it for a storage failure.
/// </summary>
internal sealed class CacheLockedException(string message, Exception inner) : Exception(message, inner);
