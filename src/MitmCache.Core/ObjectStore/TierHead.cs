namespace MitmCache.ObjectStore;

/// <summary>An object's existence and size (HEAD).</summary>
internal readonly record struct TierHead(TierOutcome Outcome, long Length = 0, string? MediaType = null);
