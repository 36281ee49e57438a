namespace MitmCache.Upstream;

/// <summary>A read-only view of at most <c>limit</c> bytes of another stream.</summary>
internal sealed class LimitedStream(Stream inner, long limit) : ReadOnlyBodyStream
{
    private long _remaining = limit;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_remaining <= 0)
        {
            return 0;
        }

        var read = await inner.ReadAsync(buffer[..(int)Math.Min(buffer.Length, _remaining)], cancellationToken);
        _remaining -= read;
        return read;
    }
}
