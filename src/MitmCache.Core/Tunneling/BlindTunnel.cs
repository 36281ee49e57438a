using System.IO.Pipelines;
using System.Net.Sockets;

namespace MitmCache.Tunneling;

/// <summary>
/// Relays raw bytes between the client connection and an upstream socket, both ways, never looking
/// inside. Each direction ends with a graceful half-close (FIN), never an abort: an abort sends RST,
/// which can cut off a response still in flight.
/// </summary>
internal static class BlindTunnel
{
    public static async Task<(long ToUpstream, long ToClient)> RelayAsync(IDuplexPipe client, Stream upstream, CancellationToken connectionClosed)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connectionClosed);
        var toUpstream = PumpClientToUpstreamAsync(client.Input, upstream, stop.Token);
        var toClient = PumpUpstreamToClientAsync(upstream, client.Output, stop.Token);

        var first = await Task.WhenAny(toUpstream, toClient);
        if (first == toClient)
        {
            // Upstream is done: the client has everything; stop waiting for it to send more.
            client.Input.CancelPendingRead();
        }
        else
        {
            // The client half-closed: let upstream finish its answer, but not forever.
            stop.CancelAfter(TimeSpan.FromMinutes(5));
        }

        return (await toUpstream, await toClient);
    }

    private static async Task<long> PumpClientToUpstreamAsync(PipeReader input, Stream upstream, CancellationToken cancellationToken)
    {
        long total = 0;
        try
        {
            while (true)
            {
                var result = await input.ReadAsync(cancellationToken);
                foreach (var segment in result.Buffer)
                {
                    await upstream.WriteAsync(segment, cancellationToken);
                    total += segment.Length;
                }

                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            if (upstream is NetworkStream network)
            {
                network.Socket.Shutdown(SocketShutdown.Send);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Either side went away; the other pump ends on its own.
        }

        return total;
    }

    private static async Task<long> PumpUpstreamToClientAsync(Stream upstream, PipeWriter output, CancellationToken cancellationToken)
    {
        long total = 0;
        try
        {
            while (true)
            {
                var memory = output.GetMemory(Upstream.StreamCopier.BufferSize);
                var read = await upstream.ReadAsync(memory, cancellationToken);
                if (read == 0)
                {
                    break;
                }

                output.Advance(read);
                total += read;
                var flush = await output.FlushAsync(cancellationToken);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }

        await output.CompleteAsync();
        return total;
    }
}
