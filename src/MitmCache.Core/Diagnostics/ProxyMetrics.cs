namespace MitmCache.Diagnostics;

/// <summary>Process-wide counters, exported in Prometheus text format at <c>/metrics</c>.</summary>
internal sealed class ProxyMetrics
{
    private long _intercepted;
    private long _tunnelled;
    private long _refused;
    private long _overTotalLimit;
    private long _overClientLimit;

    public long Intercepted => Interlocked.Read(ref _intercepted);
    public long Tunnelled => Interlocked.Read(ref _tunnelled);
    public long Refused => Interlocked.Read(ref _refused);
    public long OverTotalLimit => Interlocked.Read(ref _overTotalLimit);
    public long OverClientLimit => Interlocked.Read(ref _overClientLimit);

    public void ConnectionIntercepted() => Interlocked.Increment(ref _intercepted);
    public void ConnectionTunnelled() => Interlocked.Increment(ref _tunnelled);
    public void ConnectionRefused() => Interlocked.Increment(ref _refused);
    public void ConnectionOverLimit(bool perClient) => Interlocked.Increment(ref perClient ? ref _overClientLimit : ref _overTotalLimit);
}
