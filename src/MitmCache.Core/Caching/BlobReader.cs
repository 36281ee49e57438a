using System.IO.Pipelines;
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
/// in memory: file bytes are read straight into the response pipe's own buffer (no copy of our own),
/// one chunk at a time, and the next read waits for the pipe to drain.
/// </summary>
internal static class BlobReader
{
    private const int ChunkSize = 64 * 1024;

    public static async Task<(ReadOutcome Outcome, long Bytes)> CopyAsync(
        SafeFileHandle file, long start, long length, PipeWriter output, BlobFill? fill, CancellationToken cancellationToken)
    {
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
                        // never look like a complete response. Otherwise send whole chunks: waking
                        // for every upstream read (16 KiB HTTP/2 frames) costs a thread-pool hop and
                        // a small TLS record each; a chunk of lag behind the fill costs nothing.
                        var written = fill.Written;
                        var enough = Math.Min(ChunkSize, canSend - 1);
                        canSend = Math.Min(canSend - 1, written - position);
                        if (enough <= 0 || canSend < enough)
                        {
                            try
                            {
                                await (enough <= 0 ? fill.Completion.WaitAsync(cancellationToken) : fill.WaitForAsync(position + enough - 1, cancellationToken));
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
                Memory<byte> target;
                try
                {
                    target = output.GetMemory(want)[..want];
                }
                catch (InvalidOperationException)
                {
                    return (ReadOutcome.ClientGone, sent); // the response was completed under us
                }

                var read = await RandomAccess.ReadAsync(file, target, position, cancellationToken);
                if (read == 0)
                {
                    // End of file: expected only when the length was unknown and the fill is done.
                    return (length == long.MaxValue ? ReadOutcome.Completed : ReadOutcome.SourceFailed, sent);
                }

                FlushResult flush;
                try
                {
                    output.Advance(read);
                    flush = await output.FlushAsync(cancellationToken);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
                {
                    return (ReadOutcome.ClientGone, sent);
                }

                sent += read;
                if ((flush.IsCanceled || flush.IsCompleted) && sent < length)
                {
                    return (ReadOutcome.ClientGone, sent); // the client's side of the pipe is gone
                }
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
    }
}
