using System.Buffers;

namespace MitmCache.Upstream;

internal enum CopyFailure
{
    None,
    /// <summary>The source failed or ended early (upstream fault).</summary>
    Read,
    /// <summary>The destination failed (usually the client went away).</summary>
    Write,
    Canceled,
}

internal readonly record struct CopyResult(long Bytes, CopyFailure Failure, Exception? Error = null);

/// <summary>
/// The one body-copy loop: a pooled 64 KiB buffer, read failures kept apart from write failures,
/// the buffer returned in <c>finally</c> (after YARP's StreamCopier).
/// </summary>
internal static class StreamCopier
{
    public const int BufferSize = 64 * 1024;

    public static async Task<CopyResult> CopyAsync(Stream source, Stream destination, CancellationToken cancellationToken, Action<long>? progress = null)
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
                    read = await source.ReadAsync(buffer.AsMemory(0, BufferSize), cancellationToken);
                }
                catch (OperationCanceledException ex)
                {
                    return new(total, CopyFailure.Canceled, ex);
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException or ObjectDisposedException)
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
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
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
}
