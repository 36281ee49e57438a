using System.Buffers;

namespace MitmCache.Upstream;

internal enum CopyFailure
{
    None,
    /// <summary>The source failed, ended early or stalled (upstream fault).</summary>
    Read,
    /// <summary>The destination failed (usually the client went away).</summary>
    Write,
    Canceled,
}

internal readonly record struct CopyResult(long Bytes, CopyFailure Failure, Exception? Error = null);

/// <summary>
/// The one body-copy loop: a pooled buffer, read failures kept apart from write failures, the buffer
/// returned in <c>finally</c> (after YARP's StreamCopier). To check a body against its digest without
/// keeping it, copy it to a <see cref="HashingSink"/>.
/// </summary>
internal static class StreamCopier
{
    public const int BufferSize = 64 * 1024;

    // The asynchronous loop gathers what the source already has (a TLS stream hands out one 16 KiB
    // record per read) into one write of up to this much, and writes what it has whenever the next
    // read would wait: fewer writes, hashes and wake-ups per byte when bytes pour in, no added delay
    // when they trickle.
    private const int GatherSize = 256 * 1024;

    /// <param name="progress">Called with the size of each chunk written.</param>
    /// <param name="stallTimeout">How long a read may bring nothing before the copy fails as a
    /// <see cref="CopyFailure.Read"/> with a <see cref="TimeoutException"/>; none by default.</param>
    public static async Task<CopyResult> CopyAsync(Stream source, Stream destination, CancellationToken cancellationToken,
        Action<long>? progress = null, TimeSpan? stallTimeout = null)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(GatherSize);
        using var reads = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        long total = 0;
        int start = 0, end = 0; // read but not yet written: buffer[start..end]

        async ValueTask<CopyResult?> WriteHeldAsync()
        {
            if (end == start)
            {
                return null;
            }

            try
            {
                await destination.WriteAsync(buffer.AsMemory(start, end - start), cancellationToken);
            }
            catch (OperationCanceledException ex)
            {
                return new(total, CopyFailure.Canceled, ex);
            }
            catch (Exception ex) when (IsWriteFault(ex))
            {
                return new(total, CopyFailure.Write, ex);
            }

            total += end - start;
            progress?.Invoke(end - start);
            start = end;
            return null;
        }

        try
        {
            while (true)
            {
                if (GatherSize - end < BufferSize && await WriteHeldAsync() is { } full)
                {
                    return full;
                }

                if (end == start)
                {
                    start = end = 0;
                }

                if (stallTimeout is not null)
                {
                    reads.CancelAfter(stallTimeout.Value); // pushed back at every read
                }

                ValueTask<int> pending;
                try
                {
                    pending = source.ReadAsync(buffer.AsMemory(end, GatherSize - end), reads.Token);
                }
                catch (Exception ex)
                {
                    pending = ValueTask.FromException<int>(ex); // thrown before it started: sorted out below, as if it had failed
                }

                if (!pending.IsCompleted && end > start)
                {
                    // The source has nothing more for now: write what is held while the read waits (into the rest of the buffer).
                    if (await WriteHeldAsync() is { } failed)
                    {
                        await AbandonAsync(pending, reads);
                        return failed;
                    }

                    if (stallTimeout is not null)
                    {
                        reads.CancelAfter(stallTimeout.Value); // the write's time is not the source's silence
                    }
                }

                int read;
                try
                {
                    read = await pending;
                }
                catch (OperationCanceledException ex) when (reads.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    return await WriteHeldAsync() ?? new(total, CopyFailure.Read, new TimeoutException($"nothing received for {stallTimeout!.Value.TotalSeconds:0} s", ex));
                }
                catch (OperationCanceledException ex)
                {
                    return new(total, CopyFailure.Canceled, ex);
                }
                catch (Exception ex) when (IsReadFault(ex))
                {
                    return await WriteHeldAsync() ?? new(total, CopyFailure.Read, ex);
                }

                if (read == 0)
                {
                    return await WriteHeldAsync() ?? new(total, CopyFailure.None);
                }

                end += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>A read left pending when the write failed: cancelled and waited for, so it never lands in a returned buffer.</summary>
    private static async Task AbandonAsync(ValueTask<int> pending, CancellationTokenSource reads)
    {
        reads.Cancel();
        try
        {
            await pending;
        }
        catch (Exception ex) when (ex is OperationCanceledException || IsReadFault(ex))
        {
        }
    }

    /// <summary>
    /// The same loop, synchronous: for files read on a thread of their own (start-up repair), where an
    /// asynchronous read of a file costs a thread-pool hand-off per chunk.
    /// </summary>
    public static CopyResult Copy(Stream source, Stream destination)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        long total = 0;
        try
        {
            while (true)
            {
                int read;
                try
                {
                    read = source.Read(buffer, 0, BufferSize);
                }
                catch (Exception ex) when (IsReadFault(ex))
                {
                    return new(total, CopyFailure.Read, ex);
                }

                if (read == 0)
                {
                    return new(total, CopyFailure.None);
                }

                try
                {
                    destination.Write(buffer, 0, read);
                }
                catch (Exception ex) when (IsWriteFault(ex))
                {
                    return new(total, CopyFailure.Write, ex);
                }

                total += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static bool IsReadFault(Exception ex) => ex is IOException or HttpRequestException or ObjectDisposedException;

    private static bool IsWriteFault(Exception ex) => ex is IOException or ObjectDisposedException or InvalidOperationException;
}
