using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace MitmCache.Tests.Common;

/// <summary>
/// A TCP relay on 127.0.0.1 that holds every chunk for <see cref="Delay"/> before passing it on, each way: an
/// upstream as far away as a real registry is (Docker Hub is tens to hundreds of milliseconds from most nodes),
/// where loopback answers in microseconds and no two clients ever ask at the same time. Bytes and their order
/// are untouched.
/// </summary>
public sealed class LatencyRelay : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private readonly Task _accepting;

    private LatencyRelay(TimeSpan delay)
    {
        Delay = delay;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public TimeSpan Delay { get; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Where connections are relayed to; set before the first one arrives.</summary>
    public IPEndPoint? Target { get; set; }

    public static LatencyRelay Start(TimeSpan delay) => new(delay);

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stop.Token);
                lock (_relays)
                {
                    _relays.Add(RelayAsync(client));
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task RelayAsync(Socket client)
    {
        using (client)
        using (var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true })
        {
            try
            {
                await upstream.ConnectAsync(Target ?? throw new InvalidOperationException("LatencyRelay: no target"), _stop.Token);
                await Task.WhenAll(PumpAsync(client, upstream), PumpAsync(upstream, client));
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException)
            {
                // Either side closed, or we stopped.
            }
        }
    }

    /// <summary>Reads as fast as the source sends; writes each chunk once it is <see cref="Delay"/> old.</summary>
    private async Task PumpAsync(Socket from, Socket to)
    {
        var chunks = Channel.CreateUnbounded<(byte[] Bytes, long Due)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var writing = WriteAsync(chunks.Reader, to);
        try
        {
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await from.ReceiveAsync(buffer, _stop.Token)) > 0)
            {
                chunks.Writer.TryWrite((buffer[..read], Stopwatch.GetTimestamp() + (long)(Delay.TotalSeconds * Stopwatch.Frequency)));
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException)
        {
            // The source went away: pass on what it sent, then the end.
        }

        chunks.Writer.TryComplete();
        await writing;
    }

    private async Task WriteAsync(ChannelReader<(byte[] Bytes, long Due)> chunks, Socket to)
    {
        try
        {
            await foreach (var (bytes, due) in chunks.ReadAllAsync(_stop.Token))
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, _stop.Token);
                }

                await to.SendAsync(bytes, _stop.Token);
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The destination went away, or we stopped.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        Task[] relays;
        lock (_relays)
        {
            relays = [.. _relays];
        }

        await Task.WhenAll(relays);
        _stop.Dispose();
    }
}
