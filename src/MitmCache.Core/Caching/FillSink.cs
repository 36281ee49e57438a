using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;
using MitmCache.Diagnostics;

namespace MitmCache.Caching;

/// <summary>
/// The destination of a fill's copy (<see cref="Upstream.StreamCopier"/>): each chunk is written at its offset in the
/// temp file, hashed, shown to the fill's readers at once, and its writeback started every
/// <see cref="Writeback.Stride"/>. More bytes than the origin announced fail the write with <see cref="OverrunException"/>.
/// </summary>
internal sealed class FillSink(BlobFill fill, SafeFileHandle file, long? announced, CacheMetrics metrics) : Stream
{
    private readonly IncrementalHash _hash = fill.Digest.CreateHash();
    private long _written;
    private long _flushed; // bytes whose writeback has started

    /// <summary>More bytes than announced: not the blob that was asked for.</summary>
    public sealed class OverrunException() : InvalidOperationException("more bytes than the origin announced");

    public long Written => _written;

    /// <summary>Whether what was written hashes to the fill's digest (once, at the end).</summary>
    public bool MatchesDigest() => fill.Digest.Matches(_hash.GetHashAndReset());

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _written;

    public override long Position
    {
        get => _written;
        set => throw new NotSupportedException();
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (announced is { } limit && _written + buffer.Length > limit)
        {
            throw new OverrunException();
        }

        RandomAccess.Write(file, buffer, _written);
        _hash.AppendData(buffer);
        _written += buffer.Length;
        metrics.UpstreamBytes(buffer.Length);
        fill.Advance(buffer.Length);
        if (_written - _flushed >= Writeback.Stride)
        {
            Writeback.Start(file, _flushed, _written - _flushed);
            _flushed = _written;
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span); // a page-cache write: as the fill always wrote, on the pump's thread
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        Write(buffer.AsSpan(offset, count));
        return Task.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }

        base.Dispose(disposing);
    }
}
