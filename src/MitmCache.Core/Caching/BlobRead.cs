using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>One client's read of a blob through <see cref="BlobCache.OpenAsync"/>.</summary>
/// <param name="Origin">Where the bytes come from if the cache must fill (or pass them through).</param>
/// <param name="Reader">Who reads, for sharing a fill in flight.</param>
/// <param name="Hit">The cached copy the client may be served, as the caller found and authorized it. Null: the bytes
/// must come through <paramref name="Origin"/> even when cached, as for a repository the blob is not linked to yet.</param>
/// <param name="Committed">Runs when the fill this read started commits, before the fill ends (its readers may have sent
/// the end once the bytes were verified); given the fill's head (did its answer prove access?). Not for a joiner: the
/// fill's owner's hook runs.</param>
/// <param name="MayFill">False for a read that must not start or join a fill (a HEAD): then anything but the committed
/// file is <see cref="BlobSourceKind.Bypass"/>.</param>
internal sealed record BlobRead(Digest Digest, IBlobOrigin Origin, FillReader Reader, CachedBlob? Hit, Action<FillHead>? Committed = null, bool MayFill = true);

/// <summary>
/// Who reads a blob, for sharing a fill. Only readers of the same <paramref name="Scope"/> (registry/repository: the
/// link the fill will earn) share one. A joiner shares it at once when it is <paramref name="KnownGood"/>; when the
/// owner's answer proves access (<see cref="OriginBody.ProvesAccess"/>) for the same <paramref name="Principal"/>;
/// and otherwise only when <paramref name="ProveAsync"/> says yes. No byte of a fill reaches a joiner before one of
/// these holds.
/// </summary>
/// <param name="Principal">The credential, as the key its grants are kept under; empty for a client without one (or
/// with an anonymous token): one 200 to no credential proves the repository public to every such client.</param>
/// <param name="KnownGood">This client may read the repository without asking upstream (a fresh-public repository,
/// a live grant, a local token).</param>
/// <param name="ProveAsync">Asks upstream whether this client may read a blob of the given size (a probe; coalesced).</param>
internal sealed record FillReader(string Scope, string Principal, bool KnownGood, Func<long?, CancellationToken, Task<bool>> ProveAsync)
{
    /// <summary>A reader of <paramref name="scope"/> without credentials that is never proven by asking (a fill's default owner; tests).</summary>
    public static FillReader Anonymous(string scope) => new(scope, "", KnownGood: false, (_, _) => Task.FromResult(false));
}
