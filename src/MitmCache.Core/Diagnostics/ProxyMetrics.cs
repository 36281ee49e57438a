namespace MitmCache.Diagnostics;

/// <summary>Process-wide counters, exported in Prometheus text format at <c>/metrics</c>.</summary>
internal sealed class ProxyMetrics
{
    private long _intercepted;
    private long _tunnelled;
    private long _refused;

    public long Intercepted => Interlocked.Read(ref _intercepted);
    public long Tunnelled => Interlocked.Read(ref _tunnelled);
    public long Refused => Interlocked.Read(ref _refused);

    public void ConnectionIntercepted() => Interlocked.Increment(ref _intercepted);
    public void ConnectionTunnelled() => Interlocked.Increment(ref _tunnelled);
    public void ConnectionRefused() => Interlocked.Increment(ref _refused);
}
