namespace MitmCache.Prefetch;

/// <summary>An image could not be prefetched, for a reason worth telling the operator as it is.</summary>
internal sealed class PrefetchException(string message) : Exception(message);
