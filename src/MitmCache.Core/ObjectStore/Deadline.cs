namespace MitmCache.ObjectStore;

/// <summary>
/// One engine call's time limit: first <see cref="BlobStoreSettings.RequestTimeout"/> to connect and get an
/// answer; then, while a body moves, <see cref="BlobStoreSettings.StallTimeout"/> since the last byte either way.
/// Its token is linked to the caller's, and <see cref="Expired"/> tells the two apart.
/// </summary>
internal sealed class Deadline : IDisposable
{
    private readonly CancellationTokenSource _source;
    private readonly TimeSpan _stall;

    public Deadline(TimeSpan first, TimeSpan stall, CancellationToken callerToken)
    {
        _source = CancellationTokenSource.CreateLinkedTokenSource(callerToken);
        _stall = stall;
        CallerToken = callerToken;
        Limit = first;
        _source.CancelAfter(first);
    }

    /// <summary>The limit in force: the first one until a byte moves, then the stall timeout.</summary>
    public TimeSpan Limit { get; private set; }

    public CancellationToken Token => _source.Token;

    public CancellationToken CallerToken { get; }

    /// <summary>The limit ran out (and not the caller's patience).</summary>
    public bool Expired => _source.IsCancellationRequested && !CallerToken.IsCancellationRequested;

    /// <summary>A byte moved: the body may stall for another stall timeout from now.</summary>
    public void Progress()
    {
        try
        {
            Limit = _stall;
            _source.CancelAfter(_stall);
        }
        catch (ObjectDisposedException)
        {
            // The call is over; a late read from the SDK's buffers changes nothing.
        }
    }

    public void Dispose() => _source.Dispose();
}
