using System.Diagnostics.Metrics;

namespace MitmCache.Diagnostics;

/// <summary>Connection instruments: CONNECT decisions and connections refused by a cap (see <see cref="ProxyMeter"/>).</summary>
internal sealed class ProxyMetrics
{
    private static readonly KeyValuePair<string, object?> s_intercept = new("decision", "intercept");
    private static readonly KeyValuePair<string, object?> s_tunnel = new("decision", "tunnel");
    private static readonly KeyValuePair<string, object?> s_refuse = new("decision", "refuse");
    private static readonly KeyValuePair<string, object?> s_overTotal = new("limit", "total");
    private static readonly KeyValuePair<string, object?> s_overPerClient = new("limit", "per_client");

    private readonly Counter<long> _connections;
    private readonly Counter<long> _rejected;

    public ProxyMetrics(Meter meter)
    {
        _connections = meter.CreateCounter<long>("mitmcache_connections_total", "{connection}",
            "CONNECT requests by decision: intercept (TLS terminated), tunnel (relayed blind) or refuse.");
        _rejected = meter.CreateCounter<long>("mitmcache_client_connections_rejected_total", "{connection}",
            "Client connections refused with 503 by a connection cap.");
        foreach (var decision in (KeyValuePair<string, object?>[])[s_intercept, s_tunnel, s_refuse])
        {
            _connections.Add(0, decision);
        }

        _rejected.Add(0, s_overTotal);
        _rejected.Add(0, s_overPerClient);
    }

    public void ConnectionIntercepted() => _connections.Add(1, s_intercept);

    public void ConnectionTunnelled() => _connections.Add(1, s_tunnel);

    public void ConnectionRefused() => _connections.Add(1, s_refuse);

    public void ConnectionOverLimit(bool perClient) => _rejected.Add(1, perClient ? s_overPerClient : s_overTotal);
}
