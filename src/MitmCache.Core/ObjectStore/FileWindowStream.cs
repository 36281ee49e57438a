using Microsoft.Win32.SafeHandles;

namespace MitmCache.ObjectStore;

/// <summary>
/// A read-only, seekable window of a file (the whole of it, or one multipart part) handed to the SDK as a request
/// body: read straight from the file a buffer at a time (memory stays bounded whatever the blob's size), each
/// read a sign of progress for the call's <see cref="Deadline"/>, and counted as uploaded bytes once.
/// </summary>
internal sealed class FileWindowStream(SafeFileHandle file, long start, long length, Deadline deadline, BlobStoreMetrics metrics) : Stream
{
    private long _position;
    private long _counted;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => _position = Math.Clamp(value, 0, length);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var wanted = (int)Math.Min(buffer.Length, length - _position);
        if (wanted <= 0)
        {
            return 0;
        }

        var read = await RandomAccess.ReadAsync(file, buffer[..wanted], start + _position, cancellationToken);
        return Advance(read);
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        var wanted = (int)Math.Min(count, length - _position);
        return wanted <= 0 ? 0 : Advance(RandomAccess.Read(file, buffer.AsSpan(offset, wanted), start + _position));
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Advance(int read)
    {
        if (read == 0)
        {
            throw new EndOfStreamException($"the file ended {length - _position} bytes early"); // truncated under us
        }

        _position += read;
        deadline.Progress();
        if (_position > _counted)
        {
            metrics.Uploaded(_position - _counted); // a body read again (a seek back) counts once
            _counted = _position;
        }

        return read;
    }

    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        _ => length + offset,
    };

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
