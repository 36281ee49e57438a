using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.Caching;

/// <summary>
/// The fills in flight, one per digest, and the pump that copies an origin's body into a fill's temp file
/// (<see cref="FillSink"/>): checked against the announced length and the digest at the end, then handed to the
/// cache's commit. Fills belong to the cache, not to the client that started them: they finish when that client
/// goes away, because another node will want the blob. Every fill ends in <see cref="Finish"/>, whatever happens.
/// </summary>
internal sealed class FillPump(BlobStore store, StorageHealth health, CacheMetrics metrics, ILogger logger) : IDisposable
{
    private static readonly TimeSpan s_stallTimeout = TimeSpan.FromSeconds(60);

    /// <summary>How many times a fill whose body breaks asks its origin for the rest before it fails.</summary>
    public const int MaxResumes = 2;

    private readonly ConcurrentDictionary<Digest, BlobFill> _inFlight = new();
    private readonly ConcurrentDictionary<Task, bool> _tasks = new();
    private readonly CancellationTokenSource _stopping = new();

    public int Count => _inFlight.Count;

    public bool IsFilling(Digest digest) => _inFlight.ContainsKey(digest);

    /// <summary>
    /// The end of the fill of <paramref name="digest"/> when its bytes are verified and it is being committed (its
    /// readers have the whole blob; the fsync and the index write follow); else at once.
    /// </summary>
    public Task Committing(Digest digest) =>
        _inFlight.TryGetValue(digest, out var fill) && fill.IsVerified ? fill.Completion : Task.CompletedTask;

    /// <summary>Completes when the fills running now have ended.</summary>
    public Task Ended() => Task.WhenAll(_tasks.Keys);

    /// <summary>Joins the fill in flight for <paramref name="digest"/>, or registers a new one owned by the caller.</summary>
    public (BlobFill Fill, bool Owner) JoinOrStart(Digest digest, FillReader? reader)
    {
        while (true)
        {
            if (_inFlight.TryGetValue(digest, out var existing))
            {
                return (existing, false);
            }

            var fill = new BlobFill(digest, store.NewTempPath(digest), store.PathOf(digest), reader);
            if (_inFlight.TryAdd(digest, fill))
            {
                return (fill, true);
            }
        }
    }

    /// <summary>The owner's origin did not answer with the blob: release the digest so joiners try for themselves.</summary>
    public void Abandon(BlobFill fill)
    {
        _inFlight.TryRemove(new KeyValuePair<Digest, BlobFill>(fill.Digest, fill));
        fill.Complete(FillOutcome.Abandoned);
    }

    /// <summary>
    /// Starts copying <paramref name="body"/> into the fill, detached from any client. Returns false, leaving the body
    /// to the caller, when the temp file cannot even be created.
    /// </summary>
    /// <param name="commit">Moves the verified temp file into place: <see cref="FillOutcome.Committed"/> or
    /// <see cref="FillOutcome.StorageError"/>. Runs after the fill is verified (its readers may have sent the end),
    /// before the fill ends.</param>
    /// <param name="resume">Where the rest comes from when the body breaks mid-way (see <see cref="ResumeAsync"/>).</param>
    public bool Start(BlobFill fill, OriginBody body, Func<FillHead, long, FillOutcome> commit, IBlobOrigin? resume = null)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(fill.TempPath, FileMode.CreateNew, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            health.Report(fill.Digest, ex.Message);
            Finish(fill, FillOutcome.StorageError);
            return false;
        }

        var head = new FillHead(body.Length, body.MediaType, body.ProvesAccess);
        fill.SetHead(head);
        metrics.FillStarted();
        var task = Task.Run(() => PumpAsync(fill, body, head, handle, commit, resume));
        _tasks[task] = true;
        task.ContinueWith(t => _tasks.TryRemove(t, out _), TaskScheduler.Default);
        return true;
    }

    private async Task PumpAsync(BlobFill fill, OriginBody body, FillHead head, SafeFileHandle handle, Func<FillHead, long, FillOutcome> commit, IBlobOrigin? resume)
    {
        var outcome = FillOutcome.UpstreamError;
        try
        {
            using var sink = new FillSink(fill, handle, head.Size, metrics);
            var copy = await StreamCopier.CopyAsync(body.Body, sink, _stopping.Token, stallTimeout: s_stallTimeout);
            for (var resumes = 0; copy is { Failure: CopyFailure.Read, Error: not OriginBytesWrongException } && resume is not null && resumes < MaxResumes; resumes++)
            {
                logger.FillResuming(fill.Digest.ToString(), sink.Written, copy.Error?.Message ?? "");
                if (await ResumeAsync(resume, head, sink.Written) is not { } rest)
                {
                    break;
                }

                body.Dispose();
                body = rest;
                copy = await StreamCopier.CopyAsync(body.Body, sink, _stopping.Token, stallTimeout: s_stallTimeout);
            }

            if (Check(fill, head, sink, copy) is { } failed)
            {
                outcome = failed;
            }
            else
            {
                fill.Verify(); // readers send the end now: the flush and the commit are the cache's, not theirs
                outcome = Flush(fill, handle);
            }

            if (outcome == FillOutcome.Committed)
            {
                handle.Dispose();
                outcome = commit(head, sink.Written);
            }
        }
        finally
        {
            try
            {
                handle.Dispose();
                body.Dispose();
                if (outcome != FillOutcome.Committed)
                {
                    TryDelete(fill.TempPath);
                }
            }
            finally
            {
                Finish(fill, outcome); // always: readers wait on it, and eviction skips a digest in the map
            }
        }
    }

    /// <summary>
    /// The rest of a blob whose body broke after <paramref name="written"/> bytes: asked of the fill's origin (an
    /// <see cref="OriginChain"/> tries the origin that answered, then the next: a dead bucket hands over to upstream), and
    /// taken only if it starts exactly there and announces the same size. The fill hashes every byte, so the digest
    /// check still covers the whole blob. Null when there is no such answer; the fill then fails as before.
    /// </summary>
    private async Task<OriginBody?> ResumeAsync(IBlobOrigin origin, FillHead head, long written)
    {
        try
        {
            var answer = await origin.FetchAsync(written, _stopping.Token);
            if (answer is OriginBody rest && rest.Offset == written && (rest.Length is null || head.Size is null || rest.Length == head.Size))
            {
                return rest;
            }

            answer.Dispose();
            return null;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The origin was built for a request that may have ended since (its context gone), or the proxy is stopping.
            return null;
        }
    }

    /// <summary>Why the copied bytes are not the blob, or null when they are: all of them, and matching the digest.</summary>
    private FillOutcome? Check(BlobFill fill, FillHead head, FillSink sink, CopyResult copy)
    {
        var digest = fill.Digest.ToString();
        switch (copy.Failure)
        {
            case CopyFailure.Read or CopyFailure.Canceled:
                logger.FillUpstreamFailed(digest, sink.Written, copy.Error?.Message ?? ""); // every leg, not the last one after a resume
                return FillOutcome.UpstreamError;
            case CopyFailure.Write when copy.Error is FillSink.OverrunException:
                return FillOutcome.Truncated;
            case CopyFailure.Write:
                health.Report(fill.Digest, copy.Error?.Message ?? "");
                return FillOutcome.StorageError;
        }

        if (head.Size is { } size && sink.Written != size)
        {
            logger.FillTruncated(digest, sink.Written, size);
            return FillOutcome.Truncated;
        }

        if (!sink.MatchesDigest())
        {
            logger.FillDigestMismatch(digest, sink.Written);
            return FillOutcome.DigestMismatch;
        }

        return null;
    }

    /// <summary>The verified bytes to disk before the rename: <see cref="FillOutcome.Committed"/> when they got there.</summary>
    private FillOutcome Flush(BlobFill fill, SafeFileHandle handle)
    {
        try
        {
            RandomAccess.FlushToDisk(handle);
            return FillOutcome.Committed;
        }
        catch (IOException ex)
        {
            health.Report(fill.Digest, ex.Message);
            return FillOutcome.StorageError;
        }
    }

    private void Finish(BlobFill fill, FillOutcome outcome)
    {
        _inFlight.TryRemove(new KeyValuePair<Digest, BlobFill>(fill.Digest, fill));
        metrics.FillEnded(outcome); // counted before anyone waiting on the fill can look
        fill.Complete(outcome);
    }

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>
    /// Shutdown: fills still running are cancelled and discarded (never indexed half-done); waits for them briefly
    /// so none touches the index after it is closed.
    /// </summary>
    public void Dispose()
    {
        _stopping.Cancel();
        Task.WaitAll(_tasks.Keys.ToArray(), TimeSpan.FromSeconds(5));
        _stopping.Dispose();
    }
}
