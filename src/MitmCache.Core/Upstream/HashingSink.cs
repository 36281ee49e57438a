using System.Security.Cryptography;

namespace MitmCache.Upstream;

/// <summary>
/// A write-only stream that hashes what it is given and keeps nothing: the destination of a
/// <see cref="StreamCopier"/> copy that checks a body against its digest.
/// </summary>
internal sealed class HashingSink(IncrementalHash hash) : ForwardOnlyStream
{
    public override bool CanRead => false;

    public override bool CanWrite => true;

    public override void Write(byte[] buffer, int offset, int count) => hash.AppendData(buffer, offset, count);

    public override void Write(ReadOnlySpan<byte> buffer) => hash.AppendData(buffer);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
    {
        hash.AppendData(buffer, offset, count);
        return Task.CompletedTask;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        hash.AppendData(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
