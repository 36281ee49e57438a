namespace MitmCache.Caching;

/// <summary>
/// A place the bytes of one blob can come from, for one client's request: upstream with the client's own
/// credentials (<see cref="Registry.UpstreamBlobOrigin"/>), a shared bucket, or several of them in turn
/// (<see cref="OriginChain"/>). The cache asks its origin when it must fill (<see cref="BlobCache.OpenAsync"/>),
/// and a reader asks it again for the rest of the blob when the disk fails under a fill. An origin is built per
/// request and used only while that request lasts; the body it returns belongs to whoever received it.
/// </summary>
internal interface IBlobOrigin
{
    /// <summary>
    /// Asks for the blob's bytes from <paramref name="offset"/> (0: the whole blob; more: the rest of a response
    /// the disk cut short). Returns an <see cref="OriginBody"/>, an <see cref="OriginRefusal"/> to relay to the client
    /// as it stands, or an <see cref="OriginFault"/> when there was no answer.
    /// </summary>
    /// <param name="cancellationToken">The client's: cancelled when it goes away. The body, once returned, is read
    /// without it (a fill outlives the client that started it).</param>
    /// <exception cref="OperationCanceledException">Only when <paramref name="cancellationToken"/> was cancelled.</exception>
    Task<OriginAnswer> FetchAsync(long offset, CancellationToken cancellationToken);
}

/// <summary>What an origin answered; disposing it releases what it holds (a body, a response).</summary>
internal abstract record OriginAnswer : IDisposable
{
    public virtual void Dispose()
    {
    }
}

/// <summary>
/// The blob's bytes: <see cref="Body"/> streams it from <see cref="Offset"/> to its end, unverified (the fill hashes
/// what it writes; a resumed read is relayed as it comes).
/// </summary>
/// <param name="Length">The whole blob's size when the origin announced it, else null (streamed until it ends).</param>
/// <param name="ProvesAccess">True when this answer proves the client may read the repository: a registry's own 200
/// to the client's own credentials (or to no credentials, for a public repository). A bucket's copy proves nothing.
/// Only an answer that proves access earns a link and a grant when its bytes commit, and lets joiners with the same
/// credentials share the fill without asking upstream.</param>
/// <param name="Owner">Disposed with the body (the HTTP response it came in, a bucket's access decision), or null.</param>
internal sealed record OriginBody(Stream Body, long Offset, long? Length, string MediaType, bool ProvesAccess, IDisposable? Owner = null) : OriginAnswer
{
    public override void Dispose()
    {
        Body.Dispose();
        Owner?.Dispose();
    }
}

/// <summary>The origin answered, but not with the blob (401, 403, 404, 5xx, ...): that answer is the client's to get.</summary>
internal sealed record OriginRefusal(HttpResponseMessage Response) : OriginAnswer
{
    public override void Dispose() => Response.Dispose();
}

/// <summary>No answer from this origin.</summary>
/// <param name="Class">The <c>mitmcache_upstream_errors_total</c> class (connect, timeout), or empty when it is not an
/// upstream error (a bucket without the blob): then an <see cref="OriginChain"/> asks its next origin.</param>
/// <param name="Reason">For the client's error body and the log.</param>
internal sealed record OriginFault(string Class, string Reason) : OriginAnswer;

/// <summary>
/// What an origin's body throws when its bytes are wrong rather than cut short (a bucket object that does not match its
/// name): asking for the rest cannot help, so the fill fails at once.
/// </summary>
internal sealed class OriginBytesWrongException(string message) : IOException(message);
