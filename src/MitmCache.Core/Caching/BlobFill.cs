using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>What a fill learned from its origin before the body: enough to start answering clients.</summary>
/// <param name="ProvesAccess">The origin's answer proves the owner may read the repository (<see cref="OriginBody.ProvesAccess"/>).</param>
internal sealed record FillHead(long? Size, string MediaType, bool ProvesAccess);

internal enum FillOutcome
{
    Committed,
    /// <summary>Upstream did not answer 200 to the fill's owner; joiners retry with their own credentials.</summary>
    Abandoned,
    DigestMismatch,
    Truncated,
    UpstreamError,
    StorageError,
}

/// <summary>
/// One in-flight upstream fetch of a digest. The owner writes to a temp file; any number of readers
/// stream from that file as it grows (<see cref="WaitForAsync"/>), so a reader falls behind on disk,
/// never in memory. A reader sends a fill's last byte only once every byte is written and matches the
/// digest (<see cref="IsVerified"/>), which comes before the fsync and the commit: a client never waits
/// for the disk, and never sees a clean end of a bad blob. A fill that ends without being verified has
/// failed: its readers break their response.
/// </summary>
internal sealed class BlobFill
{
    private readonly TaskCompletionSource<FillHead?> _head = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<FillOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _written;
    private volatile bool _verified;

    private int _joiners;

    /// <param name="owner">Who started it; by default a reader without credentials of no repository.</param>
    public BlobFill(Digest digest, string tempPath, string finalPath, FillReader? owner = null)
    {
        Digest = digest;
        TempPath = tempPath;
        FinalPath = finalPath;
        Owner = owner ?? FillReader.Anonymous("");
    }

    public Digest Digest { get; }

    /// <summary>Who started the fill: who else may share it is decided against it (<see cref="FillReader"/>).</summary>
    public FillReader Owner { get; }

    /// <summary>Readers that joined the fill (waiting for its head, or reading).</summary>
    public int Joiners => Volatile.Read(ref _joiners);

    public void Join() => Interlocked.Increment(ref _joiners);

    public string TempPath { get; }

    public string FinalPath { get; }

    public long Written => Interlocked.Read(ref _written);

    /// <summary>Null when the fill was abandoned before the body (upstream said no).</summary>
    public Task<FillHead?> Head => _head.Task;

    public Task<FillOutcome> Completion => _completion.Task;

    public void SetHead(FillHead head) => _head.TrySetResult(head);

    /// <summary>Every byte is written and matches the digest: readers may send the end, whatever the commit does.</summary>
    public bool IsVerified => _verified;

    /// <summary>The bytes are the blob (all of them, hashed to the digest); called before they are flushed and committed.</summary>
    public void Verify()
    {
        _verified = true;
        Signal();
    }

    public void Advance(int bytes)
    {
        Interlocked.Add(ref _written, bytes);
        Signal();
    }

    public void Complete(FillOutcome outcome)
    {
        if (outcome == FillOutcome.Committed)
        {
            _verified = true; // a committed blob was verified first, whoever completed it
        }

        _head.TrySetResult(null);
        _completion.TrySetResult(outcome);
        Signal();
    }

    /// <summary>Waits until more than <paramref name="position"/> bytes are written, or the fill is verified or ends.</summary>
    public Task WaitForAsync(long position, CancellationToken cancellationToken) => WaitUntilAsync(position, cancellationToken);

    /// <summary>Waits until the fill is verified (<see cref="IsVerified"/>) or ends.</summary>
    public Task WaitForVerdictAsync(CancellationToken cancellationToken) => WaitUntilAsync(long.MaxValue, cancellationToken);

    private async Task WaitUntilAsync(long position, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task progress;
            lock (_gate)
            {
                if (Written > position || _verified || _completion.Task.IsCompleted)
                {
                    return;
                }

                progress = _progress.Task;
            }

            await progress.WaitAsync(cancellationToken);
        }
    }

    private void Signal()
    {
        TaskCompletionSource released;
        lock (_gate)
        {
            released = _progress;
            _progress = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        released.TrySetResult();
    }
}
