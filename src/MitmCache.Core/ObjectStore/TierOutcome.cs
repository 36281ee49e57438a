namespace MitmCache.ObjectStore;

/// <summary>What the tier answered. <see cref="Unavailable"/> always means: go on without it (upstream, or later).</summary>
internal enum TierOutcome
{
    Found,
    NotFound,

    /// <summary>The object's bytes did not match its digest: never to be served; deleted from the bucket and counted.</summary>
    Corrupt,

    /// <summary>The breaker is open, or the engine failed now (unreachable, timed out, 5xx, refused our keys).</summary>
    Unavailable,
}
