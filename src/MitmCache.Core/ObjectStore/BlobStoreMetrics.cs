using System.Diagnostics.Metrics;
using MitmCache.Diagnostics;

namespace MitmCache.ObjectStore;

/// <summary>
/// The blob tier's instruments, on the proxy's meter (see <see cref="ProxyMeter"/> for the conventions: names as
/// <c>/metrics</c> shows them, <c>_total</c> on counters, every label set known in advance present from the start).
/// </summary>
/// <remarks>
/// | instrument | type | tags |
/// |---|---|---|
/// | mitmcache_blob_store_hits_total | counter | kind: blob (blobs and manifests), tag, link, ping |
/// | mitmcache_blob_store_misses_total | counter | kind |
/// | mitmcache_blob_store_skipped_total | counter | operation: calls not made while the breaker was open |
/// | mitmcache_blob_store_uploads_total | counter | result: uploaded, exists, source_missing, source_corrupt, failed, dropped |
/// | mitmcache_blob_store_bytes_total | counter | direction: download, upload |
/// | mitmcache_blob_store_errors_total | counter | operation, reason: timeout, unreachable, server_error, access_denied, no_such_bucket, rejected, client_error |
/// | mitmcache_blob_store_corrupt_objects_total | counter | objects whose bytes did not match their digest, deleted |
/// | mitmcache_blob_store_breaker_state | gauge | 0 closed, 1 half-open, 2 open |
/// | mitmcache_blob_store_upload_queue_length | gauge | uploads waiting (persisted) |
/// </remarks>
internal sealed class BlobStoreMetrics : IDisposable
{
    private static readonly string[] s_kinds = ["blob", "tag", "link", "ping"];
    private static readonly string[] s_uploadResults = ["uploaded", "exists", "source_missing", "source_corrupt", "failed", "dropped"];
    private static readonly KeyValuePair<string, object?> s_download = new("direction", "download");
    private static readonly KeyValuePair<string, object?> s_upload = new("direction", "upload");

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

    /// <summary>Instruments on a meter of their own, that nothing exports (tests, benchmarks).</summary>
    public BlobStoreMetrics()
        : this(new Meter(ProxyMeter.Name), ownsMeter: true)
    {
    }

    /// <param name="meter">The host's meter (<see cref="ProxyMeter.Meter"/>).</param>
    public BlobStoreMetrics(Meter meter)
        : this(meter, ownsMeter: false)
    {
    }

    private BlobStoreMetrics(Meter meter, bool ownsMeter)
    {
        _meter = meter;
        _ownsMeter = ownsMeter;
        _hits = meter.CreateCounter<long>("mitmcache_blob_store_hits_total", "{object}", "Objects found in the blob store's bucket and read, by kind (blob, tag).");
        _misses = meter.CreateCounter<long>("mitmcache_blob_store_misses_total", "{object}", "Objects looked for in the bucket and not found, by kind.");
        _skipped = meter.CreateCounter<long>("mitmcache_blob_store_skipped_total", "{call}", "Calls to the bucket not made because its breaker was open, by operation.");
        _uploads = meter.CreateCounter<long>("mitmcache_blob_store_uploads_total", "{object}",
            "Background uploads to the bucket finished, by result (uploaded, exists, source_missing, source_corrupt, failed, dropped).");
        _bytes = meter.CreateCounter<long>("mitmcache_blob_store_bytes_total", "By", "Object bytes moved to or from the bucket, by direction (download, upload).");
        _errors = meter.CreateCounter<long>("mitmcache_blob_store_errors_total", "{error}", "Failed calls to the bucket's engine, by operation and reason.");
        _corrupt = meter.CreateCounter<long>("mitmcache_blob_store_corrupt_objects_total", "{object}", "Bucket objects whose bytes did not match their digest; deleted, never served.");
        meter.CreateObservableGauge("mitmcache_blob_store_breaker_state", () => (int)_breakerState(), description: "The bucket's circuit breaker: 0 closed, 1 half-open, 2 open.");
        meter.CreateObservableGauge("mitmcache_blob_store_upload_queue_length", () => _queueLength(), "{object}", "Uploads to the bucket waiting, persisted in the index.");

        // Every label set known in advance, from the start.
        foreach (var kind in s_kinds)
        {
            _hits.Add(0, new KeyValuePair<string, object?>("kind", kind));
            _misses.Add(0, new KeyValuePair<string, object?>("kind", kind));
        }

        foreach (var result in s_uploadResults)
        {
            _uploads.Add(0, new KeyValuePair<string, object?>("result", result));
        }

        _bytes.Add(0, s_download);
        _bytes.Add(0, s_upload);
        _corrupt.Add(0);
    }

    /// <summary>The meter, so a test or an exporter can tell these instruments from another instance's.</summary>
    public Meter Meter => _meter;

    public void ObserveBreaker(Func<BreakerState> state) => _breakerState = state;

    public void ObserveQueue(Func<long> length) => _queueLength = length;

    public void Hit(string kind) => _hits.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void Miss(string kind) => _misses.Add(1, new KeyValuePair<string, object?>("kind", kind));

    public void Skipped(string operation) => _skipped.Add(1, new KeyValuePair<string, object?>("operation", operation));

    public void Upload(string result) => _uploads.Add(1, new KeyValuePair<string, object?>("result", result));

    public void Downloaded(long bytes) => _bytes.Add(bytes, s_download);

    public void Uploaded(long bytes) => _bytes.Add(bytes, s_upload);

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
