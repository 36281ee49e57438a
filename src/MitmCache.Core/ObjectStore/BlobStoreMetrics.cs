using System.Diagnostics.Metrics;

namespace MitmCache.ObjectStore;

/// <summary>
/// The blob tier's instruments, on the <c>MitmCache</c> meter. Counter names carry no <c>_total</c>: a Prometheus
/// exporter that follows the OpenTelemetry mapping appends it (<c>mitmcache_blob_store_hits</c> is scraped as
/// <c>mitmcache_blob_store_hits_total</c>), and <c>dotnet-counters</c> shows them as named here.
/// </summary>
/// <remarks>
/// | instrument | type | tags |
/// |---|---|---|
/// | mitmcache_blob_store_hits | counter | kind: blob, tag |
/// | mitmcache_blob_store_misses | counter | kind |
/// | mitmcache_blob_store_skipped | counter | operation: calls not made while the breaker was open |
/// | mitmcache_blob_store_uploads | counter | result: uploaded, exists, source_missing, source_corrupt, failed, dropped |
/// | mitmcache_blob_store_bytes (By) | counter | direction: download, upload |
/// | mitmcache_blob_store_errors | counter | operation, reason: timeout, unreachable, server_error, access_denied, no_such_bucket, rejected |
/// | mitmcache_blob_store_corrupt_objects | counter | objects whose bytes did not match their digest, deleted |
/// | mitmcache_blob_store_breaker_state | gauge | 0 closed, 1 half-open, 2 open |
/// | mitmcache_blob_store_upload_queue_length | gauge | uploads waiting (persisted) |
/// </remarks>
internal sealed class BlobStoreMetrics : IDisposable
{
    public const string MeterName = "MitmCache";

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _hits;
    private readonly Counter<long> _misses;
    private readonly Counter<long> _skipped;
    private readonly Counter<long> _uploads;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _corrupt;
    private Func<BreakerState> _breakerState = () => BreakerState.Closed;
    private Func<long> _queueLength = () => 0;

    /// <param name="factory">The host's meter factory; without one the meter is owned here (tests, tools).</param>
    public BlobStoreMetrics(IMeterFactory? factory = null)
    {
        _ownsMeter = factory is null;
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _hits = _meter.CreateCounter<long>("mitmcache_blob_store_hits", description: "Objects found in the bucket and read.");
        _misses = _meter.CreateCounter<long>("mitmcache_blob_store_misses", description: "Objects looked for in the bucket and not found.");
        _skipped = _meter.CreateCounter<long>("mitmcache_blob_store_skipped", description: "Calls not made because the breaker was open.");
        _uploads = _meter.CreateCounter<long>("mitmcache_blob_store_uploads", description: "Background uploads finished, by result.");
        _bytes = _meter.CreateCounter<long>("mitmcache_blob_store_bytes", unit: "By", description: "Object bytes moved to or from the bucket.");
        _errors = _meter.CreateCounter<long>("mitmcache_blob_store_errors", description: "Failed calls to the engine, by operation and reason.");
        _corrupt = _meter.CreateCounter<long>("mitmcache_blob_store_corrupt_objects", description: "Objects whose bytes did not match their digest; deleted.");
        _meter.CreateObservableGauge("mitmcache_blob_store_breaker_state", () => (int)_breakerState(), description: "0 closed, 1 half-open, 2 open.");
        _meter.CreateObservableGauge("mitmcache_blob_store_upload_queue_length", () => _queueLength(), description: "Uploads waiting, persisted in the index.");
    }

    /// <summary>The meter, so a test or an exporter can tell these instruments from another instance's.</summary>
    public Meter Meter => _meter;

    public void ObserveBreaker(Func<BreakerState> state) => _breakerState = state;

    public void ObserveQueue(Func<long> length) => _queueLength = length;

    public void Hit(string kind) => _hits.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void Miss(string kind) => _misses.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void Skipped(string operation) => _skipped.Add(1, new KeyValuePair<string, object?>("operation", operation));

    public void Upload(string result) => _uploads.Add(1, new KeyValuePair<string, object?>("result", result));

    public void Downloaded(long bytes) => _bytes.Add(bytes, new KeyValuePair<string, object?>("direction", "download"));

    public void Uploaded(long bytes) => _bytes.Add(bytes, new KeyValuePair<string, object?>("direction", "upload"));

    public void Error(string operation, string reason) =>
        _errors.Add(1, new KeyValuePair<string, object?>("operation", operation), new KeyValuePair<string, object?>("reason", reason));

    public void Corrupt() => _corrupt.Add(1);

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}
