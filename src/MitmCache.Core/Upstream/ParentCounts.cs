namespace MitmCache.Upstream;

/// <summary>
/// What a child asked of one parent and what it got: requests sent (a resumed body's Range request included),
/// failures (no connection, its own 5xx, a body broken or stalled), and body bytes received. Read by
/// <c>ParentMetrics</c> at each scrape; added to with one interlocked add on the request path.
/// </summary>
internal sealed class ParentCounts
{
    private long _requests;
    private long _failures;
    private long _bytes;

    public long Requests => Volatile.Read(ref _requests);

    public long Failures => Volatile.Read(ref _failures);

    public long Bytes => Volatile.Read(ref _bytes);

    public void Request() => Interlocked.Increment(ref _requests);

    public void Failure() => Interlocked.Increment(ref _failures);

    public void Received(long bytes) => Interlocked.Add(ref _bytes, bytes);
}
