using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>What a fill learned from upstream before the body: enough to start answering clients.</summary>
internal sealed record FillHead(long? Size, string MediaType);

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
/// never in memory. Readers must treat any outcome other than <see cref="FillOutcome.Committed"/> as
/// a failure and break their response, so no client sees a clean end of a bad blob.
/// </summary>
internal sealed class BlobFill
{
    private readonly TaskCompletionSource<FillHead?> _head = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<FillOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private TaskCompletionSource _progress = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _written;

    public BlobFill(Digest digest, string tempPath, string finalPath)
    {
        Digest = digest;
        TempPath = tempPath;
        FinalPath = finalPath;
    }

    public Digest Digest { get; }

    public string TempPath { get; }

    public string FinalPath { get; }

    public long Written => Interlocked.Read(ref _written);

    /// <summary>Null when the fill was abandoned before the body (upstream said no).</summary>
    public Task<FillHead?> Head => _head.Task;

    public Task<FillOutcome> Completion => _completion.Task;

    public void SetHead(FillHead head) => _head.TrySetResult(head);

    public void Advance(int bytes)
    {
        Interlocked.Add(ref _written, bytes);
        Signal();
    }

    public void Complete(FillOutcome outcome)
    {
        _head.TrySetResult(null);
        _completion.TrySetResult(outcome);
        Signal();
    }

    /// <summary>Waits until more than <paramref name="position"/> bytes are written, or the fill ends.</summary>
    public async Task WaitForAsync(long position, CancellationToken cancellationToken)
    {
        Task progress;
        lock (_gate)
        {
            if (Written > position || _completion.Task.IsCompleted)
            {
                return;
            }

            progress = _progress.Task;
        }

        await progress.WaitAsync(cancellationToken);
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
