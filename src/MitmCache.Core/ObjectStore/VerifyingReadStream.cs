using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.ObjectStore;

/// <summary>
/// A whole object read from the bucket, hashed as it passes. At its end, bytes that do not match their digest are never
/// handed over as a good end: the object is deleted from the bucket (counted, logged by <see cref="S3BlobTier.DeleteCorruptAsync"/>)
/// and the read fails with an <see cref="IOException"/>, so the fill it feeds fails too, commits nothing, and the next
/// request for the digest goes upstream.
/// </summary>
internal sealed class VerifyingReadStream(Stream inner, Digest digest, S3BlobTier tier) : ReadOnlyBodyStream
{
    private readonly System.Security.Cryptography.IncrementalHash _hash = digest.CreateHash();
    private bool _checked;

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        if (read > 0)
        {
            _hash.AppendData(buffer[..read]);
            return read;
        }

        return EndAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        if (read > 0)
        {
            _hash.AppendData(buffer.Span[..read]);
            return read;
        }

        return await EndAsync(cancellationToken);
    }

    private async ValueTask<int> EndAsync(CancellationToken cancellationToken)
    {
        if (!_checked)
        {
            _checked = true;
            if (!digest.Matches(_hash.GetHashAndReset()))
            {
                await tier.DeleteCorruptAsync(digest, cancellationToken);
                throw new Caching.OriginBytesWrongException($"the blob store's object for {digest} does not match its digest: deleted");
            }
        }

        return 0;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            _hash.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        _hash.Dispose();
        await base.DisposeAsync();
    }
}
