using System.Collections.Concurrent;
using System.Net.Sockets;

namespace MitmCache.Upstream;

/// <summary>
/// One upstream host as <see cref="UpstreamHealth"/> knows it: up, or down since a time and why, the
/// probe that will tell when it answers again, and the connections open to it. Mutable, guarded by
/// <see cref="Gate"/>; <see cref="IsDown"/> and <see cref="UpToken"/> are read without it on every request.
/// </summary>
internal sealed class UpstreamState(string authority, string host, int port, UpstreamReach reach, long now, DateTimeOffset utc)
{
    private volatile bool _down;
    private volatile CancellationTokenSource _up = new();

    /// <summary><c>host</c> for 443, else <c>host:port</c>: how registries are keyed, and the metric label.</summary>
    public string Authority { get; } = authority;

    public string Host { get; } = host;

    public int Port { get; } = port;

    /// <summary>
    /// Who chose this host: a client (a registry it named, or its token host) or an upstream (a redirect). Probes
    /// dial it under the same rules; once an upstream has led us here, only under the stricter ones.
    /// </summary>
    public UpstreamReach Reach { get; set; } = reach;

    public Lock Gate { get; } = new();

    public bool IsDown => _down;

    /// <summary>Cancelled when the upstream goes down: requests waiting on it give up at once.</summary>
    public CancellationToken UpToken => _up.Token;

    /// <summary>Wall-clock timestamp of the last change of state (or of the first contact).</summary>
    public long Since { get; private set; } = now;

    public DateTimeOffset SinceUtc { get; private set; } = utc;

    public string Reason { get; set; } = "";

    /// <summary>A parent of the tier only: what its last <c>/readyz</c> said is degraded in it, or null (it ranks last while set).</summary>
    public string? Degraded { get; set; }

    /// <summary>How many times it went down: a probe started for one outage stops when another begins.</summary>
    public int Outages { get; private set; }

    /// <summary>The wait before the next probe: doubles while the upstream stays down, up to <see cref="UpstreamHealth.MaxProbeDelay"/>.</summary>
    public TimeSpan ProbeDelay { get; set; }

    /// <summary>Wall-clock timestamp of the next probe, while down.</summary>
    public long NextProbe { get; set; }

    /// <summary>The reachability check in flight, or the last one, and when it started.</summary>
    public Task<bool>? Check { get; set; }

    public long CheckStarted { get; set; }

    /// <summary>Wall-clock timestamp of the last request to it, for dropping the least used when too many are known.</summary>
    public long LastUsed { get; set; } = now;

    /// <summary>Sockets open to this upstream (pooled HTTP connections), closed when it goes down for a network fault.</summary>
    public ConcurrentDictionary<Socket, byte> Connections { get; } = new();

    /// <summary>Under <see cref="Gate"/>: marks it down; returns the signal to cancel (outside the lock).</summary>
    public CancellationTokenSource GoDown(long now, DateTimeOffset utc, string reason)
    {
        _down = true;
        Outages++;
        (Since, SinceUtc, Reason) = (now, utc, reason);
        return _up;
    }

    /// <summary>
    /// Under <see cref="Gate"/>: marks it up again, with a fresh signal for the requests to come. The spent one
    /// is left to the collector, not disposed: a request may be linking to its token right now.
    /// </summary>
    public void GoUp(long now, DateTimeOffset utc)
    {
        _up = new CancellationTokenSource();
        _down = false;
        (Since, SinceUtc, Reason) = (now, utc, "");
    }

    /// <summary>Closes every open connection: a pooled connection to a host that stopped answering is never reused.</summary>
    public void CloseConnections()
    {
        foreach (var socket in Connections.Keys)
        {
            Connections.TryRemove(socket, out _);
            try
            {
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // Closed already.
            }
        }
    }

    /// <summary>Remembers a new connection, forgetting those closed since.</summary>
    public void AddConnection(Socket socket)
    {
        if (Connections.Count >= 16)
        {
            foreach (var known in Connections.Keys)
            {
                if (known.SafeHandle.IsClosed || !known.Connected)
                {
                    Connections.TryRemove(known, out _);
                }
            }
        }

        Connections.TryAdd(socket, 0);
    }
}
