namespace MitmCache.ObjectStore;

/// <summary>
/// A link shared through the bucket: upstream sent the bytes of <see cref="Digest"/> through <see cref="Repository"/>,
/// a repository it served to a request without credentials (public). Only public links go into the bucket, so that a
/// parent that never saw a public image may serve it while upstream is down; private links, grants and keys stay with
/// the instance that earned them.
/// </summary>
internal sealed record PublicLink(string Registry, string Repository, string Digest, DateTimeOffset LinkedAt);
