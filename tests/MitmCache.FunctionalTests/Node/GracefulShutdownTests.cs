using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MitmCache.FunctionalTests.Infrastructure;

namespace MitmCache.FunctionalTests.Node;

/// <summary>
/// What a client sees while the proxy stops (SIGTERM, a restart): the listener closes at once, and
/// no request a client has sent or is about to send on an open connection is lost.
/// </summary>
public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task Stop_ConnectionJustIntercepted_FirstRequestStillAnsweredWithConnectionClose()
    {
        // A client that has just done CONNECT and TLS and is about to send its first request: Go
        // clients never retry a request on a fresh connection, so closing it would fail the pull.
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { ShutdownTimeout = TimeSpan.FromSeconds(20) });
        var port = world.Proxy.Port;
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(port, world.Authority);

        var stopping = world.Proxy.StopAsync();
        Assert.True(await Poll.UntilAsync(() => IsRefused(port), TimeSpan.FromSeconds(10))); // stopped accepting
        var response = await connection.RoundTripAsync($"GET /v2/ HTTP/1.1\r\nHost: {world.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));

        Assert.NotNull(response);
        Assert.Equal(200, response.Status);
        Assert.True(response.Closes, response.Head);
        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(10)));
        await stopping;
    }

    [Fact]
    public async Task Stop_IdleConnectionThatServedARequest_ClosedAtOnce_StopDoesNotWaitForTheTimeout()
    {
        await using var world = await RegistryWorld.StartAsync(tokenAuth: false, s => s with { ShutdownTimeout = TimeSpan.FromSeconds(60) });
        await using var connection = await RawProxyConnection.OpenInterceptedAsync(world.Proxy.Port, world.Authority);
        var first = await connection.RoundTripAsync($"GET /v2/ HTTP/1.1\r\nHost: {world.Authority}\r\n\r\n", TimeSpan.FromSeconds(10));
        Assert.Equal(200, first?.Status);
        var clock = Stopwatch.StartNew();

        await world.Proxy.StopAsync();

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"stop took {clock.Elapsed} with an idle keep-alive connection open");
        Assert.True(await connection.WaitForCloseAsync(TimeSpan.FromSeconds(10)));
    }

    private static bool IsRefused(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Connect(IPAddress.Loopback, port);
            return false;
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
        {
            return true;
        }
    }
}
