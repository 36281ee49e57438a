using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace MitmCache.Caching;

internal enum ReadOutcome
{
    Completed,
    /// <summary>The fill behind the read failed: the response must be broken, not ended.</summary>
    SourceFailed,
    /// <summary>The client went away.</summary>
    ClientGone,
}

/// <summary>
/// Copies a byte range of a blob file to a client, either a committed file or a fill's growing temp
/// file, in which case it waits for bytes as they land. A slow client falls behind in the file, never
/// in memory: the only buffer is one pooled 64 KiB block.
/// </summary>
internal static class BlobReader
{
    private const int ChunkSize = 64 * 1024;

    public static async Task<(ReadOutcome Outcome, long Bytes)> CopyAsync(
        SafeFileHandle file, long start, long length, Stream output, BlobFill? fill, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        long sent = 0;
        try
        {
            while (sent < length)
            {
                var position = start + sent;
                var canSend = length - sent;
                if (fill is not null)
                {
                    var done = fill.Completion.IsCompleted;
                    if (done && fill.Completion.Result != FillOutcome.Committed)
                    {
                        return (ReadOutcome.SourceFailed, sent);
                    }

                    if (!done)
                    {
                        // Hold back the last byte until the digest is verified, so a bad fill can
                        // never look like a complete response.
                        var written = fill.Written;
                        canSend = Math.Min(canSend - 1, written - position);
                        if (canSend <= 0)
                        {
                            try
                            {
                                await (written > position ? fill.Completion.WaitAsync(cancellationToken) : fill.WaitForAsync(position, cancellationToken));
                            }
                            catch (OperationCanceledException)
                            {
                                return (ReadOutcome.ClientGone, sent);
                            }

                            continue;
                        }
                    }
                }

                var want = (int)Math.Min(ChunkSize, canSend);
                var read = await RandomAccess.ReadAsync(file, buffer.AsMemory(0, want), position, cancellationToken);
                if (read == 0)
                {
                    // End of file: expected only when the length was unknown and the fill is done.
                    return (length == long.MaxValue ? ReadOutcome.Completed : ReadOutcome.SourceFailed, sent);
                }

                try
                {
                    await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
                {
                    return (ReadOutcome.ClientGone, sent);
                }

                sent += read;
            }

            return (ReadOutcome.Completed, sent);
        }
        catch (IOException)
        {
            return (ReadOutcome.SourceFailed, sent);
        }
        catch (OperationCanceledException)
        {
            return (ReadOutcome.ClientGone, sent);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
