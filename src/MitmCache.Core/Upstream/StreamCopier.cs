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
/// The one body-copy loop: a pooled 64 KiB buffer, read failures kept apart from write failures,
/// the buffer returned in <c>finally</c> (after YARP's StreamCopier). To check a body against its
/// digest without keeping it, copy it to a <see cref="HashingSink"/>.
/// </summary>
internal static class StreamCopier
{
    public const int BufferSize = 64 * 1024;

    /// <param name="progress">Called with the size of each chunk written.</param>
    /// <param name="stallTimeout">How long a read may bring nothing before the copy fails as a
    /// <see cref="CopyFailure.Read"/> with a <see cref="TimeoutException"/>; none by default.</param>
    public static async Task<CopyResult> CopyAsync(Stream source, Stream destination, CancellationToken cancellationToken,
        Action<long>? progress = null, TimeSpan? stallTimeout = null)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        using var stall = stallTimeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        long total = 0;
        try
        {
            while (true)
            {
                int read;
                try
                {
                    if (stall is not null)
                    {
                        stall.CancelAfter(stallTimeout!.Value); // pushed back at every read
                    }

                    read = await source.ReadAsync(buffer.AsMemory(0, BufferSize), stall?.Token ?? cancellationToken);
                }
                catch (OperationCanceledException ex) when (stall is { IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested)
                {
                    return new(total, CopyFailure.Read, new TimeoutException($"nothing received for {stallTimeout!.Value.TotalSeconds:0} s", ex));
                }
                catch (OperationCanceledException ex)
                {
                    return new(total, CopyFailure.Canceled, ex);
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
                    await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
                catch (OperationCanceledException ex)
                {
                    return new(total, CopyFailure.Canceled, ex);
                }
                catch (Exception ex) when (IsWriteFault(ex))
                {
                    return new(total, CopyFailure.Write, ex);
                }

                total += read;
                progress?.Invoke(read);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
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
