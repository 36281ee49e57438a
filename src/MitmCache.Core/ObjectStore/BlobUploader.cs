using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MitmCache.Caching;
using MitmCache.Diagnostics;
using MitmCache.Registry;

namespace MitmCache.ObjectStore;

/// <summary>
/// Uploads committed blobs and manifests to the blob store in the background, off every client's path, one at a
/// time (bounded memory and bandwidth). Each is looked for first (HEAD): once any instance of the cluster has
/// uploaded a digest, the others skip it. While the breaker is open nothing is tried; the queue waits for the
/// breaker's probe time, and a failed upload of one object (the engine answering, but not for that object) is
/// tried again with exponential back-off. The queue is persisted: a restart goes on where it stopped. A hosted
/// service of the proxy: it starts with the host and stops before the index closes.
/// </summary>
internal sealed class BlobUploader : IHostedService, IAsyncDisposable
{
    private const int Batch = 32;
    private static readonly TimeSpan s_idleCheck = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan s_indexRetry = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan s_breakerPoll = TimeSpan.FromMilliseconds(100);

    private readonly S3BlobTier _tier;
    private readonly UploadQueue _queue;
    private readonly BlobStore _store;
    private readonly BlobStoreMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<BlobUploader> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loop;

    public BlobUploader(S3BlobTier tier, UploadQueue queue, BlobStore store, BlobStoreMetrics metrics, TimeProvider time, ILogger<BlobUploader> logger)
    {
        _tier = tier;
        _queue = queue;
        _store = store;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        metrics.ObserveQueue(() => queue.Count);
    }

    /// <summary>Queues a committed blob or manifest for upload. Never blocks on the engine.</summary>
    public EnqueueResult Enqueue(Digest digest, string mediaType)
    {
        var result = _queue.TryEnqueue(digest, mediaType, _time.GetUtcNow().UtcDateTime);
        switch (result)
        {
            case EnqueueResult.Queued:
                Interlocked.Exchange(ref _wake, new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                break;
            case EnqueueResult.Full:
                _metrics.Upload("dropped");
                _logger.BlobStoreQueueFull(digest.ToString(), _tier.Settings.UploadQueueCapacity);
                break;
            case EnqueueResult.NotStored:
                _metrics.Upload("dropped");
                _logger.BlobStoreQueueFailed($"{digest} not queued");
                break;
        }

        return result;
    }

    public void Start() => _loop ??= Task.Run(() => RunAsync(_stopping.Token));

    Task IHostedService.StartAsync(CancellationToken cancellationToken)
    {
        Start();
        return Task.CompletedTask;
    }

    /// <summary>Stops; an upload in progress is cancelled and stays queued.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        if (_loop is { } loop)
        {
            await loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        _stopping.Dispose();
    }

    private async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var wake = _wake.Task; // taken before looking, so an Enqueue during the pass is not missed
            TimeSpan wait;
            try
            {
                wait = await PassAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (IndexDatabase.IsStorageFailure(ex))
            {
                _logger.BlobStoreQueueFailed(ex.Message);
                wait = s_indexRetry;
            }

            if (wait > TimeSpan.Zero)
            {
                await Task.WhenAny(wake, Task.Delay(wait, _time, ct));
            }
        }
    }

    /// <summary>Works through what is due; returns how long to wait before the next pass.</summary>
    private async Task<TimeSpan> PassAsync(CancellationToken ct)
    {
        if (_tier.Breaker.State == BreakerState.Open)
        {
            return WaitForBreaker(); // nothing is tried until the probe time
        }

        var due = _queue.Due(_time.GetUtcNow().UtcDateTime, Batch);
        foreach (var record in due)
        {
            if (!await UploadAsync(record, ct) && _tier.Breaker.State != BreakerState.Closed)
            {
                return WaitForBreaker(); // the engine failed, or someone else's probe is in flight
            }
        }

        if (due.Count == Batch)
        {
            return TimeSpan.Zero;
        }

        return _queue.NextDue() is { } next ? Clamp(next - _time.GetUtcNow().UtcDateTime) : s_idleCheck;
    }

    /// <summary>Until the breaker's probe time, and at least a moment, so that a probe someone else has in flight (a fill's) is not met with a busy loop.</summary>
    private TimeSpan WaitForBreaker()
    {
        var untilProbe = _tier.Breaker.RetryAt - _time.GetUtcNow();
        return untilProbe > s_breakerPoll ? untilProbe : s_breakerPoll;
    }

    /// <summary>One record: false when the engine was unavailable for it.</summary>
    private async Task<bool> UploadAsync(UploadRecord record, CancellationToken ct)
    {
        if (!Digest.TryParse(record.Id, out var digest))
        {
            _queue.Remove(record.Id);
            return true;
        }

        var head = await _tier.HeadAsync(digest, ct);
        var outcome = head.Outcome switch
        {
            TierOutcome.Found => (UploadOutcome?)null,
            TierOutcome.NotFound => await _tier.UploadAsync(digest, _store.PathOf(digest), record.MediaType, ct),
            _ => UploadOutcome.Unavailable,
        };
        var result = outcome switch
        {
            null => "exists",
            UploadOutcome.Uploaded => "uploaded",
            UploadOutcome.SourceMissing => "source_missing",
            UploadOutcome.SourceCorrupt => "source_corrupt",
            _ => null,
        };
        if (result is not null)
        {
            if (result != "uploaded")
            {
                _logger.BlobStoreUploadSkipped(record.Id, result);
            }

            _metrics.Upload(result);
            _queue.Remove(record.Id);
            return true;
        }

        _metrics.Upload("failed");
        if (_tier.Breaker.State == BreakerState.Closed)
        {
            // The engine answers but refused this object: back off on it alone. Otherwise the breaker paces the queue.
            var delay = Backoff(record.Attempts + 1);
            _queue.Postpone(record, _time.GetUtcNow().UtcDateTime + delay);
            _logger.BlobStoreUploadFailed(record.Id, record.Attempts, delay.TotalSeconds);
        }

        return false;
    }

    private TimeSpan Backoff(int attempt)
    {
        var settings = _tier.Settings;
        var exponential = settings.UploadRetryMin.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30));
        var jittered = Math.Min(exponential, settings.UploadRetryMax.TotalMilliseconds) * (0.8 + (0.4 * Random.Shared.NextDouble()));
        return TimeSpan.FromMilliseconds(jittered);
    }

    private static TimeSpan Clamp(TimeSpan wait) => wait < TimeSpan.Zero ? TimeSpan.Zero : wait > s_idleCheck ? s_idleCheck : wait;
}
