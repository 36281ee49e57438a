using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;

namespace MitmCache.ObjectStore;

/// <summary>The result of one call through <see cref="EngineCalls"/>: a value, "not found", or "go on without the engine".</summary>
internal readonly record struct EngineResult<T>(TierOutcome Outcome, T? Value)
{
    public static EngineResult<T> Unavailable => new(TierOutcome.Unavailable, default);
}

/// <summary>
/// Every call to the engine goes through here: the breaker first (an open breaker costs nothing), then a
/// <see cref="Deadline"/>, then the outcome is reported to the breaker, the metrics and the log. Expected
/// failures come back as <see cref="TierOutcome.Unavailable"/>; only the caller's own cancellation is thrown.
/// </summary>
internal sealed class EngineCalls(BlobStoreSettings settings, CircuitBreaker breaker, BlobStoreMetrics metrics, ILogger logger)
{
    public CircuitBreaker Breaker => breaker;

    /// <summary>
    /// Runs <paramref name="call"/> under a new deadline. When <paramref name="keepDeadline"/> is true and the call
    /// succeeds, the deadline is handed over with the value (a body still to read) and the caller disposes it.
    /// </summary>
    public async Task<EngineResult<T>> RunAsync<T>(string operation, string key, Func<Deadline, Task<T>> call,
        CancellationToken ct, bool keepDeadline = false)
    {
        var pass = breaker.TryPass();
        if (pass == BreakerPass.Rejected)
        {
            metrics.Skipped(operation);
            return EngineResult<T>.Unavailable;
        }

        var deadline = new Deadline(settings.RequestTimeout, settings.StallTimeout, ct);
        var handedOver = false;
        try
        {
            var value = await call(deadline);
            Succeeded(pass);
            handedOver = keepDeadline;
            return new(TierOutcome.Found, value);
        }
        catch (Exception ex) when (EngineFailure.IsNotFound(ex) && !deadline.Expired)
        {
            Succeeded(pass); // the engine answered
            return new(TierOutcome.NotFound, default);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            breaker.Abandoned(pass);
            throw;
        }
        catch (Exception ex) when (EngineFailure.Classify(ex, deadline, settings.Bucket) is { } failure)
        {
            Failed(pass, operation, key, failure);
            return EngineResult<T>.Unavailable;
        }
        catch
        {
            breaker.Abandoned(pass); // a programming error says nothing about the engine
            throw;
        }
        finally
        {
            if (!handedOver)
            {
                deadline.Dispose();
            }
        }
    }

    /// <summary>A call that had succeeded failed later (a body broke off): counted, and the breaker opens.</summary>
    public void FailedLater(string operation, string key, EngineFailure failure) => Failed(BreakerPass.Allowed, operation, key, failure);

    private void Succeeded(BreakerPass pass)
    {
        if (breaker.Succeeded(pass))
        {
            logger.BlobStoreRecovered(settings.Location);
        }
    }

    private void Failed(BreakerPass pass, string operation, string key, EngineFailure failure)
    {
        metrics.Error(operation, failure.Reason);
        logger.BlobStoreCallFailed(operation, key, failure.Detail);
        if (!failure.IsEngine)
        {
            if (pass == BreakerPass.Probe)
            {
                breaker.Succeeded(pass); // the engine answered, if not to our liking
            }

            return;
        }

        if (breaker.Failed(pass, $"{failure.Reason}: {failure.Detail}"))
        {
            logger.BlobStoreUnavailable(settings.Location, failure.Detail, settings.BreakerOpen.TotalSeconds);
        }
    }
}
