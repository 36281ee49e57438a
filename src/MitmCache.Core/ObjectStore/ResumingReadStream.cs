using MitmCache.Upstream;
namespace MitmCache.ObjectStore;

/// <summary>
/// A bucket body that, when the engine fails mid-body (an <see cref="IOException"/> before the blob's last byte: the
/// engine died, hung or cut the connection), goes on once from <paramref name="resume"/> (upstream, with a Range from the
/// byte it got to), so the fill it feeds still completes and no pull fails because of the tier. A failure at the end
/// (the bytes did not match the digest) is not resumed: it fails the fill, as it must. The fill verifies the whole blob
/// either way.
/// </summary>
/// <param name="resume">The rest from an offset, or null when it cannot be had (then the bucket's failure stands).</param>
internal sealed class ResumingReadStream(Stream bucket, long offset, long length, Func<long, CancellationToken, Task<Stream?>> resume, Action<long> resumed) : ReadOnlyBodyStream
{
    private readonly Stream _bucket = bucket;
    private Stream _current = bucket;
    private long _position = offset;
    private bool _resumed;

    public override long Position { get => _position; set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int read;
        try
        {
            read = await _current.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException ex) when (ex is not Caching.OriginBytesWrongException && !_resumed && _position < length && !cancellationToken.IsCancellationRequested)
        {
            _resumed = true;
            if (await resume(_position, cancellationToken) is not { } rest)
            {
                throw;
            }

            await _current.DisposeAsync();
            _current = rest;
            resumed(_position);
            read = await _current.ReadAsync(buffer, cancellationToken);
        }

        _position += read;
        return read;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _current.Dispose();
            if (_current != _bucket)
            {
                _bucket.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}
