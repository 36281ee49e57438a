using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MitmCache.Hosting;

/// <summary>
/// Asks the proxy's own listener for <c>/readyz</c>, as a client would: a connection through the real
/// socket (the one systemd holds, with socket activation), Kestrel's accept loop and HTTP parser, the
/// router, and the cache's index lookup behind <c>/readyz</c>. Passes only on a 200 within the deadline.
/// </summary>
internal sealed class ListenerSelfCheck(IPEndPoint listener)
{
    private readonly IPEndPoint _target = new(
        listener.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
        : listener.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
        : listener.Address, listener.Port);

    /// <summary>Null when the proxy answered 200, else what went wrong.</summary>
    public async Task<string?> ProbeAsync(TimeSpan deadline, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(deadline);
        using var socket = new Socket(_target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await socket.ConnectAsync(_target, timeout.Token);
            var request = $"GET /readyz HTTP/1.1\r\nHost: {_target}\r\nConnection: close\r\n\r\n";
            await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, timeout.Token);
            var buffer = new byte[256];
            var length = 0;
            while (length < buffer.Length && Array.IndexOf(buffer, (byte)'\n', 0, length) < 0)
            {
                var read = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token);
                if (read == 0)
                {
                    break;
                }

                length += read;
            }

            var statusLine = Encoding.ASCII.GetString(buffer, 0, length).Split('\n')[0].TrimEnd('\r');
            return statusLine.StartsWith("HTTP/1.1 200 ", StringComparison.Ordinal) ? null : $"/readyz on {_target} answered '{statusLine}'";
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return $"/readyz on {_target} did not answer within {deadline.TotalSeconds:0.#} s";
        }
        catch (SocketException ex)
        {
            return $"/readyz on {_target}: {ex.Message}";
        }
    }
}
