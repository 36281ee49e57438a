using Amazon.S3.Model;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// An object's body as the engine sends it, with the tier's rules: each read must move a byte within the stall
/// timeout (else the response is torn down), bytes are counted, and a body that breaks off, stalls or ends
/// short opens the breaker and surfaces as one <see cref="IOException"/>. Read-only, forward-only.
/// </summary>
internal sealed class TierReadStream : ReadOnlyBodyStream
{
    private readonly GetObjectResponse _response;
    private readonly Stream _inner;
    private readonly Deadline _deadline;
    private readonly EngineCalls _calls;
    private readonly BlobStoreMetrics _metrics;
    private readonly BlobStoreSettings _settings;
    private readonly string _key;
    private readonly long _expected;
    private readonly CancellationTokenRegistration _abortOnExpiry;
    private long _received;
    private bool _failed;
    private int _disposed;

    public TierReadStream(GetObjectResponse response, Deadline deadline, EngineCalls calls, BlobStoreMetrics metrics,
        BlobStoreSettings settings, string key, long expected)
    {
        _response = response;
        _inner = response.ResponseStream;
        _deadline = deadline;
        _calls = calls;
        _metrics = metrics;
        _settings = settings;
        _key = key;
        _expected = expected;
        // Not every layer of the SDK's stream passes a token down: tearing the response down always ends a read.
        _abortOnExpiry = deadline.Token.Register(static state => ((GetObjectResponse)state!).Dispose(), response);
    }

    public override long Position
    {
        get => _received;
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _deadline.Progress();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token);
        int read;
        try
        {
            read = await _inner.ReadAsync(buffer, linked.Token);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && !_deadline.CallerToken.IsCancellationRequested && IsReadFailure(ex))
        {
            throw Fail(ex);
        }

        return Count(read, buffer.Length);
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        _deadline.Progress();
        int read;
        try
        {
            read = _inner.Read(buffer, offset, count);
        }
        catch (Exception ex) when (!_deadline.CallerToken.IsCancellationRequested && IsReadFailure(ex))
        {
            throw Fail(ex);
        }

        return Count(read, count);
    }

    private int Count(int read, int asked)
    {
        if (read > 0)
        {
            _received += read;
            _metrics.Downloaded(read);
        }
        else if (asked > 0 && _received < _expected)
        {
            throw Fail(new EndOfStreamException($"the body ended after {_received} of {_expected} bytes"));
        }

        return read;
    }

    private static bool IsReadFailure(Exception ex) =>
        ex is IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException;

    private IOException Fail(Exception ex)
    {
        var failure = _deadline.Expired
            ? new EngineFailure("timeout", $"no byte for {_settings.StallTimeout.TotalSeconds:0.###} s after {_received} bytes", true)
            : new EngineFailure("unreachable", $"{ex.Message} after {_received} bytes", true);
        if (!_failed)
        {
            _failed = true;
            _calls.FailedLater("get", _key, failure);
        }

        return new IOException($"reading {_key} from the blob store failed: {failure.Detail}", ex);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _abortOnExpiry.Dispose();
            _response.Dispose(); // an unread rest is not drained: the connection is dropped instead
            _deadline.Dispose();
        }

        base.Dispose(disposing);
    }
}
