using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using MitmCache.Tunneling;

namespace MitmCache.Core.Tests.Tunneling;

/// <summary>
/// The relay between a client pipe (as Kestrel hands it over) and a real loopback socket upstream.
/// The client's output pipe resumes its reader inline, so a client reacting to the FIN does so
/// before the relay returns: the order an idle close takes on a fast machine.
/// </summary>
public sealed class BlindTunnelTests : IAsyncLifetime
{
    private readonly Pipe _fromClient = new();
    private readonly Pipe _toClient = new(new PipeOptions(readerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
    private readonly CancellationTokenSource _connectionClosed = new();
    private TcpListener _listener = null!;
    private Socket _upstreamPeer = null!;
    private NetworkStream _upstream = null!;

    public async Task InitializeAsync()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        var client = new TcpClient();
        var accept = _listener.AcceptSocketAsync();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)_listener.LocalEndpoint).Port);
        _upstreamPeer = await accept;
        _upstream = client.GetStream();
    }

    public async Task DisposeAsync()
    {
        await _upstream.DisposeAsync();
        _upstreamPeer.Dispose();
        _listener.Stop();
        _connectionClosed.Dispose();
    }

    /// <summary>The connection as the relay sees it: it reads what the client sent and writes what the client reads.</summary>
    private IDuplexPipe Client => new DuplexPipe(_fromClient.Reader, _toClient.Writer);

    [Fact]
    public async Task RelayAsync_SilentPastIdleTimeout_ClientClosesOnTheFin_ReportedAsIdle()
    {
        var clientSawEnd = Task.Run(CloseConnectionWhenClientOutputEndsAsync);

        var result = await BlindTunnel.RelayAsync(Client, _upstream, TimeSpan.FromMilliseconds(200), _connectionClosed.Token);

        Assert.True(await clientSawEnd);
        Assert.True(_connectionClosed.IsCancellationRequested, "the client closed its connection after the FIN");
        Assert.True(result.IdleTimedOut);
    }

    [Fact]
    public async Task RelayAsync_ClientConnectionDropsWhileActive_NotReportedAsIdle()
    {
        var relay = BlindTunnel.RelayAsync(Client, _upstream, TimeSpan.FromSeconds(30), _connectionClosed.Token);
        await _fromClient.Writer.WriteAsync("ping"u8.ToArray());
        var received = new byte[4];
        await ReceiveExactlyAsync(_upstreamPeer, received);

        await _connectionClosed.CancelAsync();
        var result = await relay;

        Assert.False(result.IdleTimedOut);
        Assert.Equal(4, result.ToUpstream);
        Assert.Equal("ping"u8.ToArray(), received);
    }

    [Fact]
    public async Task RelayAsync_UpstreamAnswersAndCloses_AnswerReachesClientCompleteAndCounted()
    {
        var relay = BlindTunnel.RelayAsync(Client, _upstream, TimeSpan.FromSeconds(30), _connectionClosed.Token);
        await _fromClient.Writer.WriteAsync("hello"u8.ToArray());
        await ReceiveExactlyAsync(_upstreamPeer, new byte[5]);
        await _upstreamPeer.SendAsync("world!"u8.ToArray());
        _upstreamPeer.Shutdown(SocketShutdown.Send);

        var result = await relay;
        var answer = await ReadToEndAsync(_toClient.Reader);

        Assert.Equal("world!"u8.ToArray(), answer);
        Assert.Equal((5, 6, false), (result.ToUpstream, result.ToClient, result.IdleTimedOut));
    }

    private async Task<bool> CloseConnectionWhenClientOutputEndsAsync()
    {
        // Off the test's synchronization context, so the continuation really runs inline with the FIN.
        await ReadToEndAsync(_toClient.Reader).ConfigureAwait(false);
        _connectionClosed.Cancel();
        return true;
    }

    private static async Task<byte[]> ReadToEndAsync(PipeReader reader)
    {
        while (true)
        {
            var read = await reader.ReadAsync().ConfigureAwait(false);
            if (read.IsCompleted)
            {
                var all = read.Buffer.ToArray();
                reader.AdvanceTo(read.Buffer.End);
                return all;
            }

            reader.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private static async Task ReceiveExactlyAsync(Socket socket, byte[] buffer)
    {
        for (var filled = 0; filled < buffer.Length;)
        {
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled));
            Assert.NotEqual(0, read);
            filled += read;
        }
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }
}
