using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MitmCache.Configuration;
using MitmCache.Upstream;

namespace MitmCache.Core.Tests.Upstream;

/// <summary>
/// Happy eyeballs (RFC 8305) and the connect timeout, on loopback: an address that refuses is skipped at once,
/// one that drops SYNs (a listener whose backlog is full) costs the attempt delay, not the whole budget.
/// </summary>
public sealed class UpstreamConnectorTests : IDisposable
{
    private readonly List<Socket> _sockets = [];

    public void Dispose() => _sockets.ForEach(s => s.Dispose());

    [Fact]
    public void Interleave_TwoFamilies_AlternateStartingWithTheFirst()
    {
        IPAddress[] addresses = [IPAddress.Parse("::1"), IPAddress.Parse("::2"), IPAddress.Parse("::3"), IPAddress.Parse("10.0.0.1"), IPAddress.Parse("10.0.0.2")];

        var ordered = UpstreamConnector.Interleave(addresses);

        Assert.Equal(["::1", "10.0.0.1", "::2", "10.0.0.2", "::3"], ordered.Select(a => a.ToString()));
    }

    [Fact]
    public void Interleave_OneFamily_Unchanged()
    {
        IPAddress[] addresses = [IPAddress.Parse("10.0.0.2"), IPAddress.Parse("10.0.0.1")];

        Assert.Same(addresses, UpstreamConnector.Interleave(addresses));
    }

    [Fact]
    public async Task ConnectAnyAsync_FirstRefuses_SecondConnects()
    {
        var listener = Listen(IPAddress.Loopback, 8);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;

        using var socket = await UpstreamConnector.ConnectAnyAsync([IPAddress.Parse("127.0.0.2"), IPAddress.Loopback], port,
            TimeSpan.FromSeconds(10), CancellationToken.None);

        Assert.Equal(IPAddress.Loopback, ((IPEndPoint)socket.RemoteEndPoint!).Address);
    }

    [Fact]
    public async Task ConnectAnyAsync_FirstDropsPackets_SecondConnectsAfterTheAttemptDelay()
    {
        var port = HangingPort(IPAddress.Parse("127.0.0.3"));
        Listen(new IPAddress([127, 0, 0, 4]), 8, port);
        var clock = Stopwatch.StartNew();

        using var socket = await UpstreamConnector.ConnectAnyAsync([IPAddress.Parse("127.0.0.3"), IPAddress.Parse("127.0.0.4")], port,
            TimeSpan.FromMilliseconds(250), CancellationToken.None);

        Assert.Equal(IPAddress.Parse("127.0.0.4"), ((IPEndPoint)socket.RemoteEndPoint!).Address);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}: the second address waited for the first");
    }

    [Fact]
    public async Task ConnectAsync_OnlyAddressDropsPackets_TimeoutAfterTheConnectTimeout()
    {
        var port = HangingPort(IPAddress.Parse("127.0.0.5"));
        var connector = new UpstreamConnector(TestSettings() with
        {
            ConnectTimeout = TimeSpan.FromMilliseconds(500),
            ConnectTo = [new("hangs.test", port, "127.0.0.5", port)],
        });
        var clock = Stopwatch.StartNew();

        var failure = await Assert.ThrowsAsync<UpstreamConnectException>(() => connector.ConnectAsync("hangs.test", port, CancellationToken.None));

        Assert.Equal(ConnectError.Timeout, failure.Error);
        Assert.Contains("--connect-timeout 0.5s", failure.Message, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task ConnectAsync_CallerCancels_OperationCanceledNotTimeout()
    {
        var port = HangingPort(IPAddress.Parse("127.0.0.6"));
        var connector = new UpstreamConnector(TestSettings() with { ConnectTo = [new("hangs.test", port, "127.0.0.6", port)] });
        using var caller = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => connector.ConnectAsync("hangs.test", port, caller.Token));
    }

    internal static ProxySettings TestSettings() => new() { DataDirectory = Path.GetTempPath(), Listen = new IPEndPoint(IPAddress.Loopback, 1) };

    private Socket Listen(IPAddress address, int backlog, int port = 0)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(socket);
        socket.Bind(new IPEndPoint(address, port));
        socket.Listen(backlog);
        return socket;
    }

    /// <summary>A port on <paramref name="address"/> whose accept queue is full: Linux drops further SYNs, so connecting hangs.</summary>
    private int HangingPort(IPAddress address)
    {
        var listener = Listen(address, 0);
        var endPoint = (IPEndPoint)listener.LocalEndPoint!;
        var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _sockets.Add(filler);
        filler.Connect(endPoint);
        return endPoint.Port;
    }
}
