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
    /// <summary>After the client half-closes, how long upstream may take to finish its answer.</summary>
    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromMinutes(5);

    /// <param name="idleTimeout">Both directions silent this long ends the relay (a peer that vanished without a FIN).</param>
    public static async Task<TunnelResult> RelayAsync(IDuplexPipe client, Stream upstream, TimeSpan idleTimeout, CancellationToken connectionClosed)
    {
        // Every transfer pushes the idle deadline back; the stop token also carries the drain deadline.
        using var idle = new CancellationTokenSource(idleTimeout);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(connectionClosed, idle.Token);

        // Decided when the connection closes, not at the end: the FIN sent on an idle timeout makes the
        // client close too, and that close must not hide the timeout that caused it.
        var closedWhileActive = false;
        using var closing = connectionClosed.UnsafeRegister(_ => closedWhileActive = !idle.IsCancellationRequested, null);
        var activity = new Activity(idle, idleTimeout);
        var toUpstream = PumpClientToUpstreamAsync(client.Input, upstream, activity, stop.Token);
        var toClient = PumpUpstreamToClientAsync(upstream, client.Output, activity, stop.Token);

        var first = await Task.WhenAny(toUpstream, toClient);
        if (first == toClient)
        {
            // Upstream is done: the client has everything; stop waiting for it to send more.
            client.Input.CancelPendingRead();
        }
        else
        {
            // The client half-closed: let upstream finish its answer, but not forever.
            stop.CancelAfter(s_drainTimeout);
        }

        var (sent, received) = (await toUpstream, await toClient);
        return new TunnelResult(sent, received, idle.IsCancellationRequested && !closedWhileActive);
    }

    private static async Task<long> PumpClientToUpstreamAsync(PipeReader input, Stream upstream, Activity activity, CancellationToken cancellationToken)
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

                activity.Touch();

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

    private static async Task<long> PumpUpstreamToClientAsync(Stream upstream, PipeWriter output, Activity activity, CancellationToken cancellationToken)
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
                activity.Touch();
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

    /// <summary>Pushes the idle deadline back; <c>CancelAfter</c> on a live source resets its timer.</summary>
    private sealed class Activity(CancellationTokenSource idle, TimeSpan idleTimeout)
    {
        public void Touch()
        {
            try
            {
                idle.CancelAfter(idleTimeout);
            }
            catch (ObjectDisposedException)
            {
                // The relay is over.
            }
        }
    }
}

/// <summary>Bytes relayed each way, and whether the tunnel ended because it sat idle.</summary>
internal readonly record struct TunnelResult(long ToUpstream, long ToClient, bool IdleTimedOut);
