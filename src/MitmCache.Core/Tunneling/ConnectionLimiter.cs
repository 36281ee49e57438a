using System.Net;
using MitmCache.Configuration;

namespace MitmCache.Tunneling;

internal enum ConnectionAdmission
{
    Admitted,
    /// <summary><c>--max-connections</c> connections are open.</summary>
    OverTotalLimit,
    /// <summary><c>--max-connections-per-client</c> connections from this address are open.</summary>
    OverClientLimit,
}

/// <summary>
/// Counts open client connections, in total and per client address, and refuses those over the caps.
/// One client cannot take every slot, and no number of clients can take more than the process can hold.
/// Kestrel's own <c>MaxConcurrentConnections</c> only drops the socket; refusing here lets us answer 503.
/// </summary>
internal sealed class ConnectionLimiter
{
    private static readonly TimeSpan s_logInterval = TimeSpan.FromSeconds(5);

    private readonly Lock _gate = new();
    private readonly Dictionary<IPAddress, int> _perClient = [];
    private readonly TimeProvider _time;
    private int _open;
    private long _refusedSinceLog;
    private DateTimeOffset? _lastLog;

    public ConnectionLimiter(ProxySettings settings, TimeProvider time)
        : this(settings.MaxConnections, settings.MaxConnectionsPerClient, time)
    {
    }

    public ConnectionLimiter(int maxConnections, int maxPerClient, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPerClient, 1);
        MaxConnections = maxConnections;
        MaxPerClient = maxPerClient;
        _time = time;
    }

    public int MaxConnections { get; }

    public int MaxPerClient { get; }

    /// <summary>Connections admitted and not yet released.</summary>
    public int Open
    {
        get
        {
            lock (_gate)
            {
                return _open;
            }
        }
    }

    /// <summary>Admits a connection from <paramref name="client"/> (null: not an IP client, counted in the total only).
    /// Every <see cref="ConnectionAdmission.Admitted"/> must be paired with one <see cref="Release"/>.</summary>
    public ConnectionAdmission TryAdmit(IPAddress? client)
    {
        var key = Normalize(client);
        lock (_gate)
        {
            if (_open >= MaxConnections)
            {
                _refusedSinceLog++;
                return ConnectionAdmission.OverTotalLimit;
            }

            if (key is not null)
            {
                _perClient.TryGetValue(key, out var count);
                if (count >= MaxPerClient)
                {
                    _refusedSinceLog++;
                    return ConnectionAdmission.OverClientLimit;
                }

                _perClient[key] = count + 1;
            }

            _open++;
            return ConnectionAdmission.Admitted;
        }
    }

    public void Release(IPAddress? client)
    {
        var key = Normalize(client);
        lock (_gate)
        {
            _open--;
            if (key is not null && _perClient.TryGetValue(key, out var count))
            {
                if (count <= 1)
                {
                    _perClient.Remove(key);
                }
                else
                {
                    _perClient[key] = count - 1;
                }
            }
        }
    }

    /// <summary>Open connections from <paramref name="client"/>.</summary>
    public int OpenFrom(IPAddress client)
    {
        lock (_gate)
        {
            return _perClient.GetValueOrDefault(Normalize(client)!);
        }
    }

    /// <summary>
    /// Whether a refusal should be logged now: the first one is, then at most one every five seconds,
    /// carrying how many were refused since, so a flood cannot flood the log as well.
    /// </summary>
    public bool ShouldLogRefusal(out long refusedSinceLastLog)
    {
        var now = _time.GetUtcNow();
        lock (_gate)
        {
            refusedSinceLastLog = _refusedSinceLog;
            if (now - _lastLog < s_logInterval)
            {
                return false;
            }

            _lastLog = now;
            _refusedSinceLog = 0;
            return true;
        }
    }

    private static IPAddress? Normalize(IPAddress? address) =>
        address is { IsIPv4MappedToIPv6: true } ? address.MapToIPv4() : address;
}
