using System.IO.Pipelines;
using System.Net;

namespace MitmCache.Upstream;

/// <summary>
/// The client's request body as upstream request content. An upstream may answer before it has read
/// the body (a 404 to a PUT), and the HTTP client then cancels the copy. Cancelling a read of Kestrel's
/// request body through a token leaves its reader "in progress" (Http1ContentLengthMessageBody resets
/// it only for aborts and timeouts): at the end of the request Kestrel could not drain the body, logged
/// an error and dropped the client connection. So a pending read is stopped with
/// <see cref="PipeReader.CancelPendingRead"/>, and every read is advanced, whatever happens after it.
/// Each piece is flushed as it is written: over HTTP/2 the client otherwise holds a streamed body (and
/// the request's HEADERS frame with it) in its buffer, so an upstream never saw a small request whose
/// body had not fully arrived yet.
/// </summary>
internal sealed class ForwardedRequestBody(PipeReader body) : HttpContent
{
    private Task _copy = Task.CompletedTask;
    private volatile bool _stopped;
    private int _reading;

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
        _copy = CopyAsync(stream, cancellationToken);

    /// <summary>The length is unknown here; a client's Content-Length header is copied onto this content as is.</summary>
    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    /// <summary>Stops the copy, if one is still running, and returns once it no longer reads the client's body.</summary>
    public async Task StopAsync()
    {
        _stopped = true;
        CancelPendingRead();
        try
        {
            await _copy;
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException or Microsoft.AspNetCore.Http.BadHttpRequestException)
        {
            // The copy's own failure is the send's to report.
        }
    }

    private async Task CopyAsync(Stream destination, CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(static state => ((ForwardedRequestBody)state!).CancelPendingRead(), this);
        while (true)
        {
            ReadResult result;
            Volatile.Write(ref _reading, 1);
            try
            {
                result = await body.ReadAsync(CancellationToken.None);
            }
            finally
            {
                Volatile.Write(ref _reading, 0);
            }

            var buffer = result.Buffer;
            try
            {
                if (_stopped || cancellationToken.IsCancellationRequested)
                {
                    throw new OperationCanceledException("the upstream request no longer needs the body", cancellationToken);
                }

                foreach (var segment in buffer)
                {
                    await destination.WriteAsync(segment, cancellationToken);
                }

                await destination.FlushAsync(cancellationToken);

                if (result.IsCompleted)
                {
                    return;
                }
            }
            finally
            {
                body.AdvanceTo(buffer.End);
            }
        }
    }

    /// <summary>Only while a read is pending: a cancel with none pending would hit Kestrel's own next read.</summary>
    private void CancelPendingRead()
    {
        if (Volatile.Read(ref _reading) == 1)
        {
            body.CancelPendingRead();
        }
    }
}
