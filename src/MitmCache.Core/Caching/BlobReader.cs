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
    /// <summary>A committed file no longer hashes to its digest: quarantine it; the response must be broken.</summary>
    Corrupt,
}

/// <summary>
/// Copies a byte range of a blob file to a client, either a committed file or a fill's growing temp
/// file, in which case it waits for bytes as they land. A slow client falls behind in the file, never
/// in memory: the only buffer is one pooled 64 KiB block.
/// </summary>
internal static class BlobReader
{
    private const int ChunkSize = 64 * 1024;

    /// <param name="verify">For a whole committed file: hash it while sending and check the digest
    /// before the last chunk goes out, so a file altered on disk never arrives complete.</param>
    public static async Task<(ReadOutcome Outcome, long Bytes)> CopyAsync(
        SafeFileHandle file, long start, long length, Stream output, BlobFill? fill, CancellationToken cancellationToken,
        Registry.Digest? verify = null)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkSize);
        using var hash = verify?.CreateHash();
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

                if (hash is not null)
                {
                    hash.AppendData(buffer, 0, read);
                    if (sent + read == length && !verify!.Value.Matches(hash.GetHashAndReset()))
                    {
                        return (ReadOutcome.Corrupt, sent);
                    }
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
