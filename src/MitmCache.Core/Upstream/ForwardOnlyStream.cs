namespace MitmCache.Upstream;

/// <summary>
/// What every forward-only stream of ours shares (bodies, the read-ahead under an upstream TLS stream, hashing sinks):
/// no seeking, no length, no position. Whether it reads or writes is the subclass's to say.
/// </summary>
internal abstract class ForwardOnlyStream : Stream
{
    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
