namespace MitmCache.ObjectStore;

/// <summary>
/// A tag's last digest confirmed by upstream, kept in the bucket so that a parent that never saw the image can
/// answer it by tag while upstream is down. Serving it is still subject to the instance's own grants.
/// </summary>
internal sealed record TagPointer(string Registry, string Repository, string Tag, string Digest, string MediaType, DateTimeOffset ConfirmedAt);
