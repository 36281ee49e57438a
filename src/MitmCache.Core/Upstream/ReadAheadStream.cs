using System.Buffers;

namespace MitmCache.Upstream;

/// <summary>
/// An upstream connection's socket stream, read through a buffer: <see cref="System.Net.Security.SslStream"/> asks
/// its transport for one TLS record at a time (16 KiB), so a blob body costs a receive system call per record; here
/// one receive takes whatever the socket holds, up to <see cref="Size"/>, and the records come out of memory. The
/// buffer is pooled and held only while a read waits for it or bytes wait in it; a zero-byte read (how an idle
/// pooled connection waits for data) goes straight through and holds none. Writes go straight through.
/// </summary>
internal sealed class ReadAheadStream(Stream inner) : ForwardOnlyStream
{
    public const int Size = 128 * 1024;

    private byte[]? _buffer;
    private int _start;
    private int _end;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_end > _start)
        {
            return Take(buffer.Span);
        }

        if (buffer.Length == 0 || buffer.Length >= Size)
        {
            return await inner.ReadAsync(buffer, cancellationToken);
        }

        var own = ArrayPool<byte>.Shared.Rent(Size);
        int read;
        try
        {
            read = await inner.ReadAsync(own.AsMemory(0, Size), cancellationToken);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(own);
            throw;
        }

        (_buffer, _start, _end) = (own, 0, read);
        return Take(buffer.Span);
    }

    public override int Read(Span<byte> buffer)
    {
        if (_end > _start)
        {
            return Take(buffer);
        }

        if (buffer.Length == 0 || buffer.Length >= Size)
        {
            return inner.Read(buffer);
        }

        var own = ArrayPool<byte>.Shared.Rent(Size);
        int read;
        try
        {
            read = inner.Read(own.AsSpan(0, Size));
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(own);
            throw;
        }

        (_buffer, _start, _end) = (own, 0, read);
        return Take(buffer);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>Buffered bytes into <paramref name="destination"/>; the buffer goes back to the pool once drained.</summary>
    private int Take(Span<byte> destination)
    {
        if (_buffer is null)
        {
            return 0;
        }

        var count = Math.Min(destination.Length, _end - _start);
        _buffer.AsSpan(_start, count).CopyTo(destination);
        _start += count;
        if (_start == _end)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            (_buffer, _start, _end) = (null, 0, 0);
        }

        return count;
    }

    public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

    public override void Write(ReadOnlySpan<byte> buffer) => inner.Write(buffer);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.WriteAsync(buffer, offset, count, cancellationToken);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        inner.WriteAsync(buffer, cancellationToken);

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose(); // a buffer still holding bytes is left to the collector: a read may be running on another thread
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        await base.DisposeAsync();
    }
}
